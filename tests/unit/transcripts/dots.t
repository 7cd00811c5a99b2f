# Dot-unstuffing (RFC 5321 4.5.2) and bodies that only look like the end.
S: 220 mx.test ESMTP mxd
C: EHLO c.example
S: 250-mx.test
S: 250-PIPELINING
S: 250-SIZE 26214400
S: 250-8BITMIME
S: 250-SMTPUTF8
S: 250-CHUNKING
S: 250 ENHANCEDSTATUSCODES
C: MAIL FROM:<>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
C: ..
C: ...
C: .leading dot
C: not . the end
C: . 
C: .\t
C: 8-bit: \xe9\xff and a NUL \0 here
C: ..
C: .
M: .
M: ..
M: leading dot
M: not . the end
M:  
M: \t
M: 8-bit: \xe9\xff and a NUL \x00 here
M: .
S: 250 2.0.0 Ok: queued as id1
C: MAIL FROM:<>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
C: .
S: 250 2.0.0 Ok: queued as id2
C: QUIT
S: 221 2.0.0 Bye
E: CLOSE quit
