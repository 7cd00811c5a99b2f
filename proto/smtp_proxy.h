/*
 * smtp_proxy.h - the PROXY protocol header (HAProxy's proxy-protocol.txt,
 * versions 1 and 2), as a pure parser.
 *
 * A TCP load balancer in front of mxd opens its own connection to us and
 * sends, before anything of the client's, one header that names the
 * client's address.  This module only reads that header: bytes in, a
 * verdict out.  It owns no socket and no clock; whom to trust, how long
 * to wait and what to log are the server's (server/conn.c).
 *
 * Any split of the input gives the same verdict: smtp_proxy_parse() judges
 * the bytes seen so far as the start of the stream, so the caller may
 * call it again with more.  Errors come as soon as the bytes rule a
 * header out (a wrong signature at the first octet, a bad v2 version or
 * length at the 16th); otherwise it says NEED_MORE up to the header's
 * end (v1: its CRLF; v2: its declared length), and never after more
 * than SMTP_PROXY_MAX octets.  A verdict, once given, stays the same
 * whatever bytes follow.
 *
 * struct smtp_proxy is an accumulator for callers that read in pieces:
 * it keeps at most SMTP_PROXY_MAX octets, and once the header is done it
 * keeps the bytes that followed it in the same reads (the client's own
 * bytes, which the caller must hand on as if just received).
 *
 * Lifetimes: an error text is a constant string; nothing is allocated.
 */
#ifndef MXD_SMTP_PROXY_H
#define MXD_SMTP_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Limits.  Version 1: the specification's own bound, 107 octets with
 * CRLF ("PROXY UNKNOWN" with two full IPv6 addresses and ports).
 * Version 2: the 16-octet fixed part plus at most 520 octets of
 * addresses and TLVs.  The specification allows 65535; the addresses
 * take at most 216 (AF_UNIX) and what HAProxy or a cloud balancer adds
 * as TLVs (ALPN, authority, unique id, SSL details, a VPC endpoint)
 * fits in the rest.  Larger is refused, so one connection cannot make
 * us hold 64 KiB before it has said anything.
 */
#define SMTP_PROXY_V1_MAX	107
#define SMTP_PROXY_V2_MAX	536
#define SMTP_PROXY_MAX		SMTP_PROXY_V2_MAX

/* What a listener accepts (key proxy_protocol, listener option proxy=). */
enum smtp_proxy_mode {
	SMTP_PROXY_OFF = 0,
	SMTP_PROXY_V1,
	SMTP_PROXY_V2,
	SMTP_PROXY_ANY,		/* v1 or v2, told apart by the first octet */
};

enum smtp_proxy_status {
	SMTP_PROXY_NEED_MORE = 0,
	SMTP_PROXY_DONE,
	SMTP_PROXY_ERROR,
};

enum smtp_proxy_kind {
	SMTP_PROXY_TCP4,	/* src and dst are 4 octets */
	SMTP_PROXY_TCP6,	/* 16 octets */
	/*
	 * v1 "UNKNOWN", or v2 PROXY with an address family we do not take
	 * (AF_UNSPEC, AF_UNIX): relayed, but the client is not named.  The
	 * specification says to use the connection's own endpoints then.
	 */
	SMTP_PROXY_UNKNOWN,
	/*
	 * v2 LOCAL: the proxy's own connection, not a client's: a health
	 * check.  Addresses, if any, are to be ignored.
	 */
	SMTP_PROXY_LOCAL,
};

struct smtp_proxy_header {
	size_t			 len;		/* octets of the header */
	int			 version;	/* 1 or 2 */
	enum smtp_proxy_kind	 kind;
	unsigned char		 src[16];	/* network order */
	unsigned char		 dst[16];
	uint16_t		 src_port;	/* host order */
	uint16_t		 dst_port;
	unsigned		 ntlv;		/* v2 TLVs skipped */
	const char		*error;		/* SMTP_PROXY_ERROR: why */
};

/*
 * Judge buf[0..len) as the first bytes of a connection.  DONE: the header
 * is h->len octets and h is filled in; ERROR: h->error says why, as a
 * phrase that starts "malformed v1 header", "malformed v2 header", "not
 * a PROXY header" or "oversized"; NEED_MORE: a valid header may still
 * follow.  mode must not be SMTP_PROXY_OFF.
 */
enum smtp_proxy_status	smtp_proxy_parse(enum smtp_proxy_mode mode,
			    const unsigned char *buf, size_t len,
			    struct smtp_proxy_header *h);

struct smtp_proxy {
	enum smtp_proxy_mode	 mode;
	enum smtp_proxy_status	 status;
	struct smtp_proxy_header hdr;
	size_t			 len;
	unsigned char		 buf[SMTP_PROXY_MAX];
};

void	smtp_proxy_init(struct smtp_proxy *p, enum smtp_proxy_mode mode);

/*
 * Room for the next read: SMTP_PROXY_MAX octets in all, so nothing is
 * ever read that could not be kept.  0 once decided.
 */
size_t	smtp_proxy_room(const struct smtp_proxy *p);

/*
 * Add bytes; takes at most smtp_proxy_room() of them and returns how
 * many.  The verdict so far is in p->status (and p->hdr).
 */
size_t	smtp_proxy_feed(struct smtp_proxy *p, const void *buf, size_t len);

/* After DONE: the bytes that followed the header; NULL with *len 0. */
const unsigned char *smtp_proxy_rest(const struct smtp_proxy *p,
			    size_t *len);

/* "TCP4", "TCP6", "UNKNOWN", "LOCAL". */
const char *smtp_proxy_kind_name(enum smtp_proxy_kind k);

#endif
