# With dsn off (the default) DSN is not offered: its parameters are 555.
S: 220 mx.test ESMTP mxd
C: EHLO c.example
S: 250-mx.test
S: 250-PIPELINING
S: 250-SIZE 26214400
S: 250-8BITMIME
S: 250-SMTPUTF8
S: 250-CHUNKING
S: 250 ENHANCEDSTATUSCODES
C: MAIL FROM:<a@c.example> RET=HDRS
S: 555 5.5.4 Unsupported parameter RET
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test> NOTIFY=SUCCESS
S: 555 5.5.4 Unsupported parameter NOTIFY
C: QUIT
S: 221 2.0.0 Bye
E: CLOSE quit
