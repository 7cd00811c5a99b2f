# A 421 greeting closes the session.
!greet 421 4.3.2 Not now
S: 421 4.3.2 Not now
E: CLOSE refused
C: EHLO c.example
