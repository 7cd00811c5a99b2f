# SMTP smuggling vectors under bare_newline = reject: none may end the
# message early or start a transaction from inside the data.
!bare_newline reject
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
S: 550 5.5.2 Error: bare <CR> or <LF> in message
E: ABORT bare_newline
# <CR>.<CR>
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
R: hello\r.\rMAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@mx.test>\r\nDATA\r\nsmuggled\r\n
C: .
S: 550 5.5.2 Error: bare <CR> or <LF> in message
E: ABORT bare_newline
# <LF>.<CRLF>
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
R: hello\n.\r\nMAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@mx.test>\r\nDATA\r\nsmuggled\r\n
C: .
S: 550 5.5.2 Error: bare <CR> or <LF> in message
E: ABORT bare_newline
# <CRLF>.<LF>
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
R: hello\r\n.\nMAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@mx.test>\r\nDATA\r\nsmuggled\r\n
C: .
S: 550 5.5.2 Error: bare <CR> or <LF> in message
E: ABORT bare_newline
# <CRLF>.<CR>
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
R: hello\r\n.\rMAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@mx.test>\r\nDATA\r\nsmuggled\r\n
C: .
S: 550 5.5.2 Error: bare <CR> or <LF> in message
E: ABORT bare_newline
# <CR><CR><LF>.<CR><CR><LF>
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
R: hello\r\r\n.\r\r\nMAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@mx.test>\r\nDATA\r\nsmuggled\r\n
C: .
S: 550 5.5.2 Error: bare <CR> or <LF> in message
E: ABORT bare_newline
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
S: 250 2.0.0 Ok: queued as id1
# a command ended by a bare LF
R: NOOP\n
S: 500 5.5.2 Error: bare <LF> received
C: QUIT
S: 221 2.0.0 Bye
E: CLOSE quit
