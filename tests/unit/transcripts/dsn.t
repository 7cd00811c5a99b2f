# DSN (RFC 3461) parameters, when dsn is on: validated, passed on.
!dsn 1
!max_errors 100
S: 220 mx.test ESMTP mxd
C: EHLO c.example
S: 250-mx.test
S: 250-PIPELINING
S: 250-SIZE 26214400
S: 250-8BITMIME
S: 250-SMTPUTF8
S: 250-DSN
S: 250-CHUNKING
S: 250 ENHANCEDSTATUSCODES
C: MAIL FROM:<a@c.example> RET=HDRS ENVID=QQ314159+2B+3D
S: 250 2.1.0 Ok
C: RCPT TO:<b@mx.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b@mx.test
S: 250 2.1.5 Ok
C: RCPT TO:<c@mx.test> NOTIFY=never
S: 250 2.1.5 Ok
C: RCPT TO:<d@mx.test> NOTIFY=NEVER,SUCCESS
S: 501 5.5.4 Bad NOTIFY parameter
C: RCPT TO:<d@mx.test> NOTIFY=SUCCESS,SUCCESS
S: 501 5.5.4 Bad NOTIFY parameter
C: RCPT TO:<d@mx.test> NOTIFY=SUCCESS,
S: 501 5.5.4 Bad NOTIFY parameter
C: RCPT TO:<d@mx.test> NOTIFY=FAILURE NOTIFY=DELAY
S: 501 5.5.4 Duplicate NOTIFY parameter
C: RCPT TO:<d@mx.test> ORCPT=rfc822;d+2b@mx.test
S: 501 5.5.4 Bad ORCPT parameter
C: RCPT TO:<d@mx.test> ORCPT=d@mx.test
S: 501 5.5.4 Bad ORCPT parameter
C: RCPT TO:<d@mx.test> ORCPT=utf-8;d\xc3\xa9@mx.test
S: 250 2.1.5 Ok
C: RCPT TO:<e@mx.test> ORCPT=rfc822;e\xc3\xa9@mx.test
S: 501 5.5.4 Bad ORCPT parameter
C: RSET
S: 250 2.0.0 Ok
C: MAIL FROM:<a@c.example> RET=ALL
S: 501 5.5.4 Bad RET parameter
C: MAIL FROM:<a@c.example> ENVID=a=b
S: 501 5.5.4 Syntax: MAIL FROM:<address> [parameters]
C: MAIL FROM:<a@c.example> ENVID=+2b
S: 501 5.5.4 Bad ENVID parameter
C: MAIL FROM:<a@c.example> ENVID
S: 501 5.5.4 Bad ENVID parameter
C: MAIL FROM:<a@c.example> RET=FULL RET=FULL
S: 501 5.5.4 Duplicate RET parameter
C: QUIT
S: 221 2.0.0 Bye
E: CLOSE quit
