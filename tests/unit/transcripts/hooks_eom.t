# The end of a message answered by the caller: nothing is kept, the
# transaction ends.
!eom 451 4.7.1 Please try again later
!hook NOOP disconnect
S: 220 mx.test ESMTP mxd
C: HELO c.example
S: 250 mx.test
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
C: hi
C: .
M: hi
S: 451 4.7.1 Please try again later
C: RCPT TO:<b@mx.test>
S: 503 5.5.1 Error: need MAIL command
C: NOOP
E: HOOK NOOP
E: CLOSE fault
C: QUIT
