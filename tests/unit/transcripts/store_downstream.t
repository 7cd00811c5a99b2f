# What a mailbox server (LMTP) said, as the client gets it.  Unreachable:
# 451 4.4.1.  Refused for every recipient: its code and enhanced code
# with our text, not counted as a bad command (max_errors 1 would close
# at the first), and the transaction is over.  A code or enhanced code
# that is not a permanent one gives 550 5.1.1.
!max_errors 1
!rejected 554 5.7.1
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
S: 554 5.7.1 Rejected by the mailbox server
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
C: again
C: .
M: again
S: 554 5.7.1 Rejected by the mailbox server
C: QUIT
S: 221 2.0.0 Bye
E: CLOSE quit
