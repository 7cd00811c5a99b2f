# STARTTLS (RFC 3207): pipelined plaintext after it is dropped, the
# session is reset after the handshake, STARTTLS is not offered again.
!tls 1
S: 220 mx.test ESMTP mxd
C: EHLO c.example
S: 250-mx.test
S: 250-PIPELINING
S: 250-SIZE 26214400
S: 250-8BITMIME
S: 250-STARTTLS
S: 250 ENHANCEDSTATUSCODES
C: HELP
S: 214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: STARTTLS extra
S: 501 5.5.4 Syntax: STARTTLS
C: STARTTLS
C: RSET
S: 220 2.0.0 Ready to start TLS
E: STARTTLS
E: DISCARDED 6
T:
C: MAIL FROM:<a@c.example>
S: 503 5.5.1 Error: send HELO/EHLO first
C: EHLO c.example
S: 250-mx.test
S: 250-PIPELINING
S: 250-SIZE 26214400
S: 250-8BITMIME
S: 250 ENHANCEDSTATUSCODES
C: RCPT TO:<b@mx.test>
S: 503 5.5.1 Error: need MAIL command
C: HELP
S: 214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP
C: STARTTLS
S: 503 5.5.1 Error: TLS already active
C: QUIT
S: 221 2.0.0 Bye
E: CLOSE quit
