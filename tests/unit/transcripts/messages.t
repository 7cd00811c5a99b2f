# max_messages_per_connection: the next MAIL gets 421 and the session ends.
!max_messages 2
S: 220 mx.test ESMTP mxd
C: HELO c.example
S: 250 mx.test
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
C: one
C: .
M: one
S: 250 2.0.0 Ok: queued as id1
C: MAIL FROM:<a@c.example>
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test>
S: 250 2.1.5 Ok
C: BDAT 5 LAST
R: two\r\n
M: two
S: 250 2.0.0 Ok: queued as id2
C: MAIL FROM:<a@c.example>
S: 421 4.7.0 mx.test Error: too many messages in this session
E: CLOSE too_many_messages
