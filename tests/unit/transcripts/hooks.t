# The command hook of a harness: a command answered by the caller has
# no other effect; a BDAT's chunk is still read; the end of a message
# can be answered too.
!hook RCPT 550 5.1.1 No such user here
!hook DATA 554 5.7.1 Not today
!eom 451 4.7.1 Please try again later
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
E: HOOK RCPT
S: 550 5.1.1 No such user here
C: DATA
E: HOOK DATA
S: 554 5.7.1 Not today
C: BDAT 4 LAST
R: abc\n
S: 503 5.5.1 Error: need RCPT command
C: QUIT
S: 221 2.0.0 Bye
E: CLOSE quit
