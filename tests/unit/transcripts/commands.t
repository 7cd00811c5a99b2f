# Commands are case-insensitive; NOOP takes an argument; RSET, VRFY, HELP.
S: 220 mx.test ESMTP mxd
C: ehlo client.example
S: 250-mx.test
S: 250-PIPELINING
S: 250-SIZE 26214400
S: 250-8BITMIME
S: 250-SMTPUTF8
S: 250-CHUNKING
S: 250 ENHANCEDSTATUSCODES
C: noop
S: 250 2.0.0 Ok
C: NoOp anything at all
S: 250 2.0.0 Ok
C: VRFY bob
S: 252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery
C: VRFY
S: 501 5.5.4 Syntax: VRFY address
C: HELP
S: 214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP
C: mail from:<a@b.example>
S: 250 2.1.0 Ok
C: rcpt to:<c@d.example>
S: 250 2.1.5 Ok
C: rset
S: 250 2.0.0 Ok
C: DATA
S: 503 5.5.1 Error: need MAIL command
C: RSET extra
S: 501 5.5.4 Syntax: RSET
C: EXPN staff
S: 502 5.5.1 Error: command not implemented
C: AUTH PLAIN AAAA
S: 502 5.5.1 Error: command not implemented
C: STARTTLS
S: 454 4.7.0 TLS not available
C: QUIT now
S: 501 5.5.4 Syntax: QUIT
C: quit
S: 221 2.0.0 Bye
E: CLOSE quit
C: NOOP
