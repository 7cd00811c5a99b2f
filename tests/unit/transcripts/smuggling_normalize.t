# SMTP smuggling vectors under bare_newline = normalize: none may end the
# message early or start a transaction from inside the data.
!bare_newline normalize
S: 220 mx.test ESMTP mxd
C: EHLO c.example
S: 250-mx.test
S: 250-PIPELINING
S: 250-SIZE 26214400
S: 250-8BITMIME
S: 250-SMTPUTF8
S: 250-CHUNKING
S: 250 ENHANCEDSTATUSCODES
# <LF>.<LF>
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
R: hello\n.\nMAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@mx.test>\r\nDATA\r\nsmuggled\r\n
C: .
M: hello
M: .
M: MAIL FROM:<evil@attacker.example>
M: RCPT TO:<victim@mx.test>
M: DATA
M: smuggled
S: 250 2.0.0 Ok: queued as id1
# <CR>.<CR>
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
R: hello\r.\rMAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@mx.test>\r\nDATA\r\nsmuggled\r\n
C: .
M: hello
M: .
M: MAIL FROM:<evil@attacker.example>
M: RCPT TO:<victim@mx.test>
M: DATA
M: smuggled
S: 250 2.0.0 Ok: queued as id2
# <LF>.<CRLF>
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
R: hello\n.\r\nMAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@mx.test>\r\nDATA\r\nsmuggled\r\n
C: .
M: hello
M: .
M: MAIL FROM:<evil@attacker.example>
M: RCPT TO:<victim@mx.test>
M: DATA
M: smuggled
S: 250 2.0.0 Ok: queued as id3
# <CRLF>.<LF>
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
R: hello\r\n.\nMAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@mx.test>\r\nDATA\r\nsmuggled\r\n
C: .
M: hello
M: .
M: MAIL FROM:<evil@attacker.example>
M: RCPT TO:<victim@mx.test>
M: DATA
M: smuggled
S: 250 2.0.0 Ok: queued as id4
# <CRLF>.<CR>
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
R: hello\r\n.\rMAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@mx.test>\r\nDATA\r\nsmuggled\r\n
C: .
M: hello
M: .
M: MAIL FROM:<evil@attacker.example>
M: RCPT TO:<victim@mx.test>
M: DATA
M: smuggled
S: 250 2.0.0 Ok: queued as id5
# <CR><CR><LF>.<CR><CR><LF>
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
R: hello\r\r\n.\r\r\nMAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@mx.test>\r\nDATA\r\nsmuggled\r\n
C: .
M: hello
M: 
M: .
M: 
M: MAIL FROM:<evil@attacker.example>
M: RCPT TO:<victim@mx.test>
M: DATA
M: smuggled
S: 250 2.0.0 Ok: queued as id6
# <CRLF>.<NUL><CRLF>
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
R: hello\r\n.\0\r\nMAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@mx.test>\r\nDATA\r\nsmuggled\r\n
C: .
M: hello
M: \x00
M: MAIL FROM:<evil@attacker.example>
M: RCPT TO:<victim@mx.test>
M: DATA
M: smuggled
S: 250 2.0.0 Ok: queued as id7
# a command ended by a bare LF
R: NOOP\n
S: 250 2.0.0 Ok
C: QUIT
S: 221 2.0.0 Bye
E: CLOSE quit
