# A command line that never ends: 500, then 421 and close.
S: 220 mx.test ESMTP mxd
R: NOOP 
!repeat 7000 0123456789
S: 500 5.5.2 Error: line too long
S: 421 4.7.0 mx.test Error: no line end in the command, closing
E: CLOSE flood
