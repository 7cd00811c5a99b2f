# CHUNKING (RFC 3030): exact octet counts, no dot handling, LAST.
!max_errors 100
!max_message_size 40
S: 220 mx.test ESMTP mxd
C: EHLO c.example
S: 250-mx.test
S: 250-PIPELINING
S: 250-SIZE 40
S: 250-8BITMIME
S: 250-SMTPUTF8
S: 250-CHUNKING
S: 250 ENHANCEDSTATUSCODES
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
R: BDAT 11\r\n.\r\nDATA\r\n..
S: 250 2.0.0 11 octets received
R: BDAT 6 LAST\r\nx\r\n.\r\n
M: .
M: DATA
M: ..x
M: .
S: 250 2.0.0 Ok: queued as id1
# a message of no octets
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
C: BDAT 0 LAST
S: 250 2.0.0 Ok: queued as id2
# the chunk is read even when refused, then the reply
R: BDAT 5\r\nRSET\n
S: 503 5.5.1 Error: need MAIL command
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
R: BDAT 3 LAST\r\nabc
S: 503 5.5.1 Error: need RCPT command
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
R: BDAT 4\r\nabc\n
S: 250 2.0.0 4 octets received
C: DATA
S: 503 5.5.1 Error: DATA and BDAT cannot be mixed
C: RSET
S: 250 2.0.0 Ok
# the size limit holds across chunks; a body begun is dropped
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
R: BDAT 30\r\n012345678901234567890123456789
S: 250 2.0.0 30 octets received
R: BDAT 20\r\n01234567890123456789
S: 552 5.3.4 Message size exceeds fixed maximum message size
E: ABORT too_big
R: BDAT 2 LAST\r\nzz
S: 503 5.5.1 Error: need MAIL command
C: BDAT
S: 501 5.5.4 Syntax: BDAT chunk-size [LAST]
C: BDAT 1 FIRST
S: 501 5.5.4 Syntax: BDAT chunk-size [LAST]
C: BDAT x
S: 501 5.5.4 Syntax: BDAT chunk-size [LAST]
C: QUIT
S: 221 2.0.0 Bye
E: CLOSE quit
