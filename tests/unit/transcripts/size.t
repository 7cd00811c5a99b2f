# The message is read to its end, then refused; nothing is passed on.
!max_message_size 24
!max_text_line 12
S: 220 mx.test ESMTP mxd
C: EHLO c.example
S: 250-mx.test
S: 250-PIPELINING
S: 250-SIZE 24
S: 250-8BITMIME
S: 250-SMTPUTF8
S: 250-CHUNKING
S: 250 ENHANCEDSTATUSCODES
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
C: 0123456789
C: 0123456789
C: 0123456789
C: .
S: 552 5.3.4 Message size exceeds fixed maximum message size
E: ABORT too_big
C: RCPT TO:<b@mx.test>
S: 503 5.5.1 Error: need MAIL command
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
C: 01234567890
C: .
S: 550 5.6.0 Error: message line longer than 12 octets
E: ABORT line_too_long
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
C: 0123456789
C: 012345678
C: .
M: 0123456789
M: 012345678
S: 250 2.0.0 Ok: queued as id1
C: QUIT
S: 221 2.0.0 Bye
E: CLOSE quit
