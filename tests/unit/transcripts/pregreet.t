# Talking before the (delayed) greeting: 554 5.5.1 and close.
!pregreet
C: EHLO impatient.example
S: 554 5.5.1 mx.test Error: talked before the greeting
E: CLOSE pregreet
