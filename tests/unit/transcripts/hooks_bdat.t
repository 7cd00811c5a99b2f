# A BDAT answered by the caller: its chunk is read and dropped first.
!hook BDAT 552 5.3.4 Too big for a test
S: 220 mx.test ESMTP mxd
C: EHLO c.example
S: 250-mx.test
S: 250-PIPELINING
S: 250-SIZE 26214400
S: 250-8BITMIME
S: 250-SMTPUTF8
S: 250-CHUNKING
S: 250 ENHANCEDSTATUSCODES
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
R: BDAT 9 LAST\r\nQUIT\r\nabc
E: HOOK BDAT
S: 552 5.3.4 Too big for a test
C: NOOP
S: 250 2.0.0 Ok
C: QUIT
S: 221 2.0.0 Bye
E: CLOSE quit
