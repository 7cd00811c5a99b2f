# The mailbox server (LMTP) could not be reached: 451 4.4.1, and the
# client starts again with MAIL.
!store unavailable
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
S: 451 4.4.1 Mailbox server not reachable, try again later
C: RCPT TO:<b@mx.test>
S: 503 5.5.1 Error: need MAIL command
C: QUIT
S: 221 2.0.0 Bye
E: CLOSE quit
