# Out-of-sequence commands, no valid recipients, relay refusal.
!deny elsewhere.example
S: 220 mx.test ESMTP mxd
C: RCPT TO:<a@mx.test>
S: 503 5.5.1 Error: need MAIL command
C: DATA
S: 503 5.5.1 Error: need MAIL command
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
C: DATA
S: 503 5.5.1 Error: need RCPT command
C: RCPT TO:<x@elsewhere.example>
S: 550 5.7.1 Relaying denied
C: DATA
S: 554 5.5.1 Error: no valid recipients
C: RCPT TO:<x@ELSEWHERE.EXAMPLE>
S: 550 5.7.1 Relaying denied
C: RCPT TO:<x@mx.test>
S: 250 2.1.5 Ok
C: DATA extra
S: 501 5.5.4 Syntax: DATA
C: QUIT
S: 221 2.0.0 Bye
E: CLOSE quit
