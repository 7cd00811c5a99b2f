# Ten bad commands, then 421 4.7.0 and close; later input is ignored.
S: 220 mx.test ESMTP mxd
C: FOO
S: 500 5.5.1 Error: command unrecognized
C:
S: 500 5.5.2 Error: bad syntax
C: NOOP\x01
S: 500 5.5.2 Error: invalid character in command
C: BAR
S: 500 5.5.1 Error: command unrecognized
C: MAIL FROM:<a@b.example>
S: 503 5.5.1 Error: send HELO/EHLO first
C: EHLO
S: 501 5.5.4 Syntax: EHLO hostname
C: BAZ
S: 500 5.5.1 Error: command unrecognized
C: EXPN x
S: 502 5.5.1 Error: command not implemented
C: STARTTLS
S: 454 4.7.0 TLS not available
C: RCPT TO:<a@b.example>
S: 503 5.5.1 Error: need MAIL command
C: QUUX /index.html
S: 500 5.5.1 Error: command unrecognized
S: 421 4.7.0 mx.test Error: too many errors
E: CLOSE too_many_errors
C: NOOP
