/*
 * tls_wire.h - what tls/ learns by watching the raw record stream.
 *
 * mbedTLS says neither whether it has already sent an alert nor what the
 * client offered when a handshake fails, and its structs are not ours to
 * read.  So the send and receive callbacks pass every octet through a
 * tls_stream, which follows the record framing (RFC 8446 5.1, RFC 5246
 * 6.2: type, version, 16-bit length, body) and notes alerts, and, on the
 * receiving side, keeps the first handshake record so that the
 * ClientHello can be parsed for the failure log.
 *
 * Pure code over byte buffers: no mbedTLS, no I/O; fuzzed on its own.
 */
#ifndef MXD_TLS_WIRE_H
#define MXD_TLS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	TLS_CT_CHANGE_CIPHER_SPEC = 20,
	TLS_CT_ALERT = 21,
	TLS_CT_HANDSHAKE = 22,
	TLS_CT_APPLICATION_DATA = 23,
};

/* An alert description we could not read (it was encrypted). */
#define TLS_ALERT_ENCRYPTED	256
#define TLS_ALERT_NONE		(-1)

/* A ClientHello record is at most 2^14 octets of body (RFC 8446 5.1). */
#define TLS_HELLO_MAX		16384

struct tls_stream {
	/* Framing. */
	uint8_t		 hdr[5];
	unsigned	 hdr_len;
	size_t		 body_left;
	uint8_t		 type;		/* of the record being read */
	size_t		 body_len;
	uint64_t	 octets;	/* total seen */
	unsigned	 records;	/* whole records seen */
	unsigned	 other_records;	/* whole records that are no alert */
	uint8_t		 first_octet;	/* of the stream */
	bool		 broken;	/* not TLS framing: stop parsing */
	bool		 strict;	/* also require version 3.x */

	/* Set by the owner: records after a ChangeCipherSpec are opaque;
	 * in TLS 1.3 handshake records hide as application_data. */
	bool		 ccs_seen;
	bool		 handshaking;

	/* Alerts: the first one seen, when it has fully passed. */
	bool		 alert_started;
	bool		 alert_done;
	int		 alert_level;
	int		 alert_desc;	/* TLS_ALERT_* or 0..255 */
	uint8_t		 alert_body[2];
	unsigned	 alert_body_len;
	bool		 alert_opaque;

	/* Receiving side: the first handshake record's body. */
	bool		 keep_hello;
	uint8_t		*hello;
	size_t		 hello_len;
	bool		 hello_done;
};

/* keep_hello: the receiving side (keep the ClientHello, check versions). */
void	tls_stream_init(struct tls_stream *s, bool keep_hello);
void	tls_stream_finish(struct tls_stream *s);
void	tls_stream_feed(struct tls_stream *s, const uint8_t *p, size_t n);

/* What a ClientHello offered, for logs and for classifying a failure. */
struct tls_hello_info {
	bool		 parsed;
	uint16_t	 legacy_version;	/* ClientHello.legacy_version */
	uint16_t	 min_version;		/* lowest offered */
	uint16_t	 max_version;		/* highest offered */
	unsigned	 nciphers;
	uint16_t	 ciphers[4];		/* the first few */
	bool		 cipher_match;		/* shares a suite with ours */
	bool		 has_groups;		/* supported_groups present */
	bool		 group_match;		/* shares a group with ours */
	unsigned	 ngroups;
	uint16_t	 groups[24];		/* the first few */
	char		 sni[256];		/* host_name, "" if none */
};

/*
 * Parse a ClientHello from a handshake record body (starting at the
 * handshake type octet), and compare it with our cipher suites (IANA
 * numbers, 0-terminated) and groups.  0 on success, -1 when it is not a
 * well-formed ClientHello (info->parsed stays false).
 */
int	tls_parse_client_hello(const uint8_t *p, size_t n, const int *suites,
	    const uint16_t *groups, size_t ngroups,
	    struct tls_hello_info *info);

/* "TLSv1.2" for 0x0303 and so on; "SSLv3", "0x7f1c" otherwise. */
const char	*tls_version_name(uint16_t v, char buf[8]);
/* "handshake_failure" for 40; "unknown" otherwise. */
const char	*tls_alert_name(int desc);

#endif
