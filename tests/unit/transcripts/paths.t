# Path grammar of RFC 5321 4.1.2.
S: 220 mx.test ESMTP mxd
C: EHLO c.example
S: 250-mx.test
S: 250-PIPELINING
S: 250-SIZE 26214400
S: 250-8BITMIME
S: 250-SMTPUTF8
S: 250-CHUNKING
S: 250 ENHANCEDSTATUSCODES
!max_errors 100
C: MAIL FROM:a@b.example
S: 501 5.5.4 Syntax: MAIL FROM:<address>
C: MAIL FROM <a@b.example>
S: 501 5.5.4 Syntax: MAIL FROM:<address>
C: MAIL FROM:<a@b.example
S: 501 5.1.7 Bad sender address syntax
C: MAIL FROM:<a b@c.example>
S: 501 5.1.7 Bad sender address syntax
C: MAIL FROM:<a@>
S: 501 5.1.7 Bad sender address syntax
C: MAIL FROM:<@b.example>
S: 501 5.1.7 Bad sender address syntax
C: MAIL FROM:<a..b@c.example>
S: 501 5.1.7 Bad sender address syntax
C: MAIL FROM:<a@c_d.example>
S: 501 5.1.7 Bad sender address syntax
C: MAIL FROM:<a@c.example.>
S: 501 5.1.7 Bad sender address syntax
C: MAIL FROM:<postmaster>
S: 501 5.1.7 Bad sender address syntax
C: MAIL FROM:<\xc3\xa9@c.example>
S: 550 5.6.7 Non-ASCII address needs SMTPUTF8
C: MAIL FROM:<a@[1.2.3]>
S: 501 5.1.7 Bad sender address syntax
C: MAIL FROM:<aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@c.example>
S: 501 5.1.7 Sender address too long
C: MAIL FROM:<>
S: 250 2.1.0 Ok
C: RCPT TO:<>
S: 501 5.1.3 Bad recipient address syntax
C: RCPT TO:<Postmaster>
S: 250 2.1.5 Ok
C: RCPT TO:<postmaster@mx.test>
S: 250 2.1.5 Ok
C: RCPT TO:<@relay1.example,@relay2.example:bob@mx.test>
S: 250 2.1.5 Ok
C: RCPT TO:<"john doe"@mx.test>
S: 250 2.1.5 Ok
C: RCPT TO:<"quoted\\"quote>"@mx.test>
S: 250 2.1.5 Ok
C: RCPT TO:<user@[192.0.2.7]>
S: 250 2.1.5 Ok
C: RCPT TO:<user@[IPv6:::1]>
S: 250 2.1.5 Ok
C: RCPT TO:<user@[x-tag:any]>
S: 250 2.1.5 Ok
C: RCPT TO:<user@[x-tag:a>b"c]>
S: 250 2.1.5 Ok
C: RCPT TO:<o'neil+tag=x@sub.mx.test>
S: 250 2.1.5 Ok
C: RCPT TO: <space@mx.test>
S: 250 2.1.5 Ok
C: RCPT TO:<user@[IPv6:zz::1]>
S: 501 5.1.3 Bad recipient address syntax
C: RCPT TO:<postmistress>
S: 501 5.1.3 Bad recipient address syntax
C: RCPT TO:<a@b.example> XFOO=1
S: 555 5.5.4 Unsupported parameter XFOO
C: RCPT TO:bob@mx.test
S: 501 5.5.4 Syntax: RCPT TO:<address>
C: RCPT <bob@mx.test>
S: 501 5.5.4 Syntax: RCPT TO:<address>
C: RCPT TO:<bob@mx.test>garbage
S: 501 5.5.4 Syntax: RCPT TO:<address> [parameters]
C: QUIT
S: 221 2.0.0 Bye
E: CLOSE quit
