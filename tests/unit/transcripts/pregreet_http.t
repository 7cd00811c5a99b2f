# An HTTP request before the greeting: no reply at all.
!pregreet
C: POST /submit HTTP/1.1
E: CLOSE http_request
