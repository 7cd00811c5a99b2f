# SMTPUTF8 (RFC 6531): UTF-8 paths only with the MAIL parameter.
!max_errors 100
S: 220 mx.test ESMTP mxd
C: EHLO c.example
S: 250-mx.test
S: 250-PIPELINING
S: 250-SIZE 26214400
S: 250-8BITMIME
S: 250-SMTPUTF8
S: 250-CHUNKING
S: 250 ENHANCEDSTATUSCODES
C: MAIL FROM:<j\xc3\xb6rg@b\xc3\xbccher.example>
S: 550 5.6.7 Non-ASCII address needs SMTPUTF8
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<\xe7\x94\xa8\xe6\x88\xb7@mx.test>
S: 553 5.6.7 Non-ASCII address needs SMTPUTF8
C: RSET
S: 250 2.0.0 Ok
C: MAIL FROM:<j\xc3\xb6rg@b\xc3\xbccher.example> SMTPUTF8
S: 250 2.1.0 Ok
C: RCPT TO:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.mx.test>
S: 250 2.1.5 Ok
C: RCPT TO:<"q \xc3\xa9"@mx.test>
S: 250 2.1.5 Ok
# not UTF-8: overlong, surrogate, truncated, a lone continuation
C: RCPT TO:<\xc0\xaf@mx.test>
S: 501 5.1.3 Bad recipient address syntax
C: RCPT TO:<\xed\xa0\x80@mx.test>
S: 501 5.1.3 Bad recipient address syntax
C: RCPT TO:<a\xe4\xbe@mx.test>
S: 501 5.1.3 Bad recipient address syntax
C: RCPT TO:<a@\x80.mx.test>
S: 501 5.1.3 Bad recipient address syntax
C: RSET
S: 250 2.0.0 Ok
C: MAIL FROM:<a@c.example> SMTPUTF8=yes
S: 501 5.5.4 Bad SMTPUTF8 parameter
C: MAIL FROM:<a@c.example> SMTPUTF8 SMTPUTF8
S: 501 5.5.4 Duplicate SMTPUTF8 parameter
C: QUIT
S: 221 2.0.0 Bye
E: CLOSE quit
