# A 554 greeting (RFC 5321 3.1): the connection stays, every command
# but QUIT gets 503.
!greet 554 5.7.1 No mail accepted here
S: 554 5.7.1 No mail accepted here
C: EHLO c.example
S: 503 5.5.1 Error: no SMTP service here
C: MAIL FROM:<a@c.example>
S: 503 5.5.1 Error: no SMTP service here
C: QUIT
S: 221 2.0.0 Bye
E: CLOSE quit
