# HELO/EHLO argument checks, and HELO (not EHLO) forbids parameters.
S: 220 mx.test ESMTP mxd
C: MAIL FROM:<a@b.example>
S: 503 5.5.1 Error: send HELO/EHLO first
C: EHLO
S: 501 5.5.4 Syntax: EHLO hostname
C: HELO
S: 501 5.5.4 Syntax: HELO hostname
C: EHLO two words
S: 501 5.5.4 Syntax: EHLO hostname
C: EHLO bad..name
S: 501 5.5.4 Invalid domain name
C: EHLO -leading.example
S: 501 5.5.4 Invalid domain name
C: EHLO [300.1.1.1]
S: 501 5.5.4 Invalid domain name
C: HELO windows_pc.example
S: 250 mx.test
C: HELO [192.0.2.1]
S: 250 mx.test
C: HELO [IPv6:2001:db8::1]
S: 250 mx.test
C: MAIL FROM:<a@b.example> SIZE=10
S: 555 5.5.4 Parameters are not allowed after HELO
C: MAIL FROM:<a@b.example>
S: 250 2.1.0 Ok
C: HELO again.example
S: 250 mx.test
C: RCPT TO:<c@d.example>
S: 503 5.5.1 Error: need MAIL command
C: QUIT
S: 221 2.0.0 Bye
E: CLOSE quit
