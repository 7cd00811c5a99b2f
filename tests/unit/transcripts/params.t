# MAIL parameters: SIZE (RFC 1870), BODY (RFC 6152), unknown ones.
!max_message_size 1000
!max_errors 100
S: 220 mx.test ESMTP mxd
C: EHLO c.example
S: 250-mx.test
S: 250-PIPELINING
S: 250-SIZE 1000
S: 250-8BITMIME
S: 250-SMTPUTF8
S: 250-CHUNKING
S: 250 ENHANCEDSTATUSCODES
C: MAIL FROM:<a@b.example> SIZE=1001
S: 552 5.3.4 Message size exceeds fixed maximum message size
C: MAIL FROM:<a@b.example> SIZE=99999999999999999999
S: 552 5.3.4 Message size exceeds fixed maximum message size
C: MAIL FROM:<a@b.example> SIZE=999999999999999999999
S: 501 5.5.4 Bad SIZE parameter
C: MAIL FROM:<a@b.example> SIZE=
S: 501 5.5.4 Syntax: MAIL FROM:<address> [parameters]
C: MAIL FROM:<a@b.example> SIZE
S: 501 5.5.4 Bad SIZE parameter
C: MAIL FROM:<a@b.example> SIZE=12a
S: 501 5.5.4 Bad SIZE parameter
C: MAIL FROM:<a@b.example> SIZE=1 SIZE=2
S: 501 5.5.4 Duplicate SIZE parameter
C: MAIL FROM:<a@b.example> BODY=BINARYMIME
S: 501 5.5.4 Bad BODY parameter
C: MAIL FROM:<a@b.example> BODY=8bitmime BODY=7BIT
S: 501 5.5.4 Duplicate BODY parameter
C: MAIL FROM:<a@b.example> AUTH=<>
S: 555 5.5.4 Unsupported parameter AUTH
C: MAIL FROM:<a@b.example> =x
S: 501 5.5.4 Syntax: MAIL FROM:<address> [parameters]
C: MAIL FROM:<a@b.example>  SIZE=1000   body=8BITMIME
S: 250 2.1.0 Ok
C: MAIL FROM:<a@b.example>
S: 503 5.5.1 Error: nested MAIL command
C: QUIT
S: 221 2.0.0 Bye
E: CLOSE quit
