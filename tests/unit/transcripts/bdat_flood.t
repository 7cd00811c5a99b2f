# A chunk that would take the message past twice the limit is not read.
!max_message_size 1024
S: 220 mx.test ESMTP mxd
C: EHLO c.example
S: 250-mx.test
S: 250-PIPELINING
S: 250-SIZE 1024
S: 250-8BITMIME
S: 250-SMTPUTF8
S: 250-CHUNKING
S: 250 ENHANCEDSTATUSCODES
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
C: BDAT 2049 LAST
S: 552 5.3.4 Message size exceeds fixed maximum message size
S: 421 4.7.0 mx.test Error: chunk far over the size limit, closing
E: CLOSE flood
R: xxxx
