# An HTTP request line ends the session at once, with no reply.
S: 220 mx.test ESMTP mxd
C: GET / HTTP/1.1
E: CLOSE http_request
C: Host: mx.test
C:
