# require_tls: before TLS only EHLO HELO STARTTLS NOOP RSET QUIT (RFC 3207 4).
!tls 1
!require_tls 1
S: 220 mx.test ESMTP mxd
C: EHLO c.example
S: 250-mx.test
S: 250-PIPELINING
S: 250-SIZE 26214400
S: 250-8BITMIME
S: 250-STARTTLS
S: 250 ENHANCEDSTATUSCODES
C: MAIL FROM:<a@c.example>
S: 530 5.7.0 Must issue a STARTTLS command first
C: VRFY x
S: 530 5.7.0 Must issue a STARTTLS command first
C: NOOP
S: 250 2.0.0 Ok
C: RSET
S: 250 2.0.0 Ok
C: STARTTLS
S: 220 2.0.0 Ready to start TLS
E: STARTTLS
T:
C: EHLO c.example
S: 250-mx.test
S: 250-PIPELINING
S: 250-SIZE 26214400
S: 250-8BITMIME
S: 250 ENHANCEDSTATUSCODES
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: QUIT
S: 221 2.0.0 Bye
E: CLOSE quit
