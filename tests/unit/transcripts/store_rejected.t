# SMTP_MSG_REJECTED without a code of the server's: 550 5.1.1.  A bad
# code from the caller (!rejected 250 2.0.0 would be a lie) gives the
# same; see store_downstream.t.
!store rejected
S: 220 mx.test ESMTP mxd
C: HELO c.example
S: 250 mx.test
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
C: body
C: .
M: body
S: 550 5.1.1 Rejected by the mailbox server
C: QUIT
S: 221 2.0.0 Bye
E: CLOSE quit
