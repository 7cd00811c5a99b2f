# A message that could not be made durable gets 4xx, and the transaction
# is over: the client starts again with MAIL.
!store nospace
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
S: 452 4.3.1 Insufficient system storage
C: RCPT TO:<b@mx.test>
S: 503 5.5.1 Error: need MAIL command
C: QUIT
S: 221 2.0.0 Bye
E: CLOSE quit
