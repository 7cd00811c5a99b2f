# A plain ESMTP transaction, then QUIT.
S: 220 mx.test ESMTP mxd
C: EHLO client.example
S: 250-mx.test
S: 250-PIPELINING
S: 250-SIZE 26214400
S: 250-8BITMIME
S: 250-SMTPUTF8
S: 250-CHUNKING
S: 250 ENHANCEDSTATUSCODES
C: MAIL FROM:<alice@client.example>
S: 250 2.1.0 Ok
C: RCPT TO:<bob@mx.test>
S: 250 2.1.5 Ok
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
C: Subject: hello
C:
C: Hi Bob.
C: .
M: Subject: hello
M:
M: Hi Bob.
S: 250 2.0.0 Ok: queued as id1
C: QUIT
S: 221 2.0.0 Bye
E: CLOSE quit
