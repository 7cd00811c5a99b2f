/*
 * tls_wire.c - record framing observer and ClientHello parser.
 *
 * The parser follows RFC 8446 4.1.2 (ClientHello) and 4.2 (extensions),
 * which also covers TLS 1.0-1.2 hellos: every length is checked against
 * what remains before it is used, and a malformed hello is reported as
 * such, never read past.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls_wire.h"

void
tls_stream_init(struct tls_stream *s, bool keep_hello)
{
	memset(s, 0, sizeof(*s));
	s->alert_level = TLS_ALERT_NONE;
	s->alert_desc = TLS_ALERT_NONE;
	s->keep_hello = keep_hello;
	s->strict = keep_hello;
	s->handshaking = true;
}

void
tls_stream_finish(struct tls_stream *s)
{
	free(s->hello);
	s->hello = NULL;
	s->hello_len = 0;
}

static bool
valid_type(uint8_t t)
{
	return t >= TLS_CT_CHANGE_CIPHER_SPEC && t <= 24;
}

/* A record header is complete: decide what to watch in its body. */
static void
record_start(struct tls_stream *s)
{
	s->type = s->hdr[0];
	s->body_len = (size_t)s->hdr[3] << 8 | s->hdr[4];
	s->body_left = s->body_len;
	if (!valid_type(s->type) || (s->strict && s->hdr[1] != 3) ||
	    s->body_len > 16384 + 2048) {
		s->broken = true;
		return;
	}
	if (!s->alert_started) {
		if (s->type == TLS_CT_ALERT) {
			s->alert_started = true;
			s->alert_body_len = 0;
			s->alert_opaque = s->ccs_seen || s->body_len != 2;
		} else if (s->type == TLS_CT_APPLICATION_DATA &&
		    s->handshaking && (s->body_len == 19 ||
		    s->body_len == 11)) {
			/*
			 * TLS 1.3 hides an alert as application_data: 2
			 * octets, the inner type, and a 16 (or 8, CCM_8)
			 * octet tag.  No handshake message is that short.
			 */
			s->alert_started = true;
			s->alert_opaque = true;
		}
	}
	if (s->keep_hello && !s->hello_done && s->records == 0 &&
	    s->type == TLS_CT_HANDSHAKE && s->body_len > 0) {
		s->hello = malloc(s->body_len);
		s->hello_len = 0;
	}
}

static void
record_end(struct tls_stream *s)
{
	s->records++;
	if (!(s->alert_started && !s->alert_done))
		s->other_records++;
	if (s->type == TLS_CT_CHANGE_CIPHER_SPEC)
		s->ccs_seen = true;
	if (s->alert_started && !s->alert_done) {
		s->alert_done = true;
		if (s->alert_opaque || s->alert_body_len != 2) {
			s->alert_desc = TLS_ALERT_ENCRYPTED;
		} else {
			s->alert_level = s->alert_body[0];
			s->alert_desc = s->alert_body[1];
		}
	}
	if (s->hello != NULL && !s->hello_done)
		s->hello_done = true;
}

void
tls_stream_feed(struct tls_stream *s, const uint8_t *p, size_t n)
{
	size_t take;

	if (n > 0 && s->octets == 0)
		s->first_octet = p[0];
	s->octets += n;
	while (n > 0 && !s->broken) {
		if (s->hdr_len < 5) {
			take = 5 - s->hdr_len;
			if (take > n)
				take = n;
			memcpy(s->hdr + s->hdr_len, p, take);
			s->hdr_len += (unsigned)take;
			p += take;
			n -= take;
			if (s->hdr_len == 5) {
				record_start(s);
				if (s->body_left == 0 && !s->broken) {
					record_end(s);
					s->hdr_len = 0;
				}
			}
			continue;
		}
		take = s->body_left < n ? s->body_left : n;
		if (s->alert_started && !s->alert_done && !s->alert_opaque) {
			size_t i;

			for (i = 0; i < take && s->alert_body_len < 2; i++)
				s->alert_body[s->alert_body_len++] = p[i];
		}
		if (s->hello != NULL && !s->hello_done) {
			memcpy(s->hello + s->hello_len, p, take);
			s->hello_len += take;
		}
		p += take;
		n -= take;
		s->body_left -= take;
		if (s->body_left == 0) {
			record_end(s);
			s->hdr_len = 0;
		}
	}
}

/* ---- ClientHello ------------------------------------------------------ */

struct reader {
	const uint8_t	*p;
	size_t		 n;
};

static bool
get_u8(struct reader *r, unsigned *v)
{
	if (r->n < 1)
		return false;
	*v = r->p[0];
	r->p++;
	r->n--;
	return true;
}

static bool
get_u16(struct reader *r, unsigned *v)
{
	if (r->n < 2)
		return false;
	*v = (unsigned)r->p[0] << 8 | r->p[1];
	r->p += 2;
	r->n -= 2;
	return true;
}

/* A length-prefixed vector (prefix of 1, 2 or 3 octets) as a sub-reader. */
static bool
get_vec(struct reader *r, unsigned prefix, struct reader *out)
{
	size_t len = 0;
	unsigned i;

	if (r->n < prefix)
		return false;
	for (i = 0; i < prefix; i++)
		len = len << 8 | r->p[i];
	if (r->n - prefix < len)
		return false;
	out->p = r->p + prefix;
	out->n = len;
	r->p += prefix + len;
	r->n -= prefix + len;
	return true;
}

static void
parse_sni(struct reader e, struct tls_hello_info *info)
{
	struct reader list, name;
	unsigned type;

	/* RFC 6066 3: ServerNameList of (type, opaque HostName<1..2^16-1>) */
	if (!get_vec(&e, 2, &list))
		return;
	while (list.n > 0) {
		if (!get_u8(&list, &type) || !get_vec(&list, 2, &name))
			return;
		if (type == 0 && info->sni[0] == 0 && name.n > 0 &&
		    name.n < sizeof(info->sni)) {
			size_t i;

			for (i = 0; i < name.n; i++) {
				uint8_t c = name.p[i];

				/* Log-safe: printable ASCII only. */
				info->sni[i] = (char)(c > 32 && c < 127 ? c :
				    '?');
			}
			info->sni[name.n] = 0;
		}
	}
}

static bool
ours_suite(const int *suites, unsigned cs)
{
	for (; suites != NULL && *suites != 0; suites++)
		if ((unsigned)*suites == cs)
			return true;
	return false;
}

static bool
ours_group(const uint16_t *groups, size_t n, unsigned g)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (groups[i] == g)
			return true;
	return false;
}

int
tls_parse_client_hello(const uint8_t *p, size_t n, const int *suites,
    const uint16_t *groups, size_t ngroups, struct tls_hello_info *info)
{
	struct reader r = { p, n }, body, v, exts, e;
	unsigned type, ver, cs, etype, x, count = 0;
	bool have_sv = false;

	memset(info, 0, sizeof(*info));
	/* Handshake header: msg_type (1 = client_hello), uint24 length. */
	if (!get_u8(&r, &type) || type != 1 || !get_vec(&r, 3, &body))
		return -1;
	if (!get_u16(&body, &ver) || body.n < 32)
		return -1;
	info->legacy_version = (uint16_t)ver;
	body.p += 32;			/* random */
	body.n -= 32;
	if (!get_vec(&body, 1, &v) || v.n > 32)	/* legacy_session_id */
		return -1;
	if (!get_vec(&body, 2, &v) || v.n < 2 || v.n % 2 != 0)
		return -1;
	info->nciphers = (unsigned)(v.n / 2);
	while (v.n > 0 && get_u16(&v, &cs)) {
		if (count < 4)
			info->ciphers[count++] = (uint16_t)cs;
		if (ours_suite(suites, cs))
			info->cipher_match = true;
	}
	if (!get_vec(&body, 1, &v) || v.n < 1)	/* compression_methods */
		return -1;
	info->min_version = info->max_version = (uint16_t)ver;
	if (body.n > 0) {
		if (!get_vec(&body, 2, &exts) || body.n != 0)
			return -1;
		while (exts.n > 0) {
			if (!get_u16(&exts, &etype) || !get_vec(&exts, 2, &e))
				return -1;
			switch (etype) {
			case 0:		/* server_name */
				parse_sni(e, info);
				break;
			case 10:	/* supported_groups */
				if (!get_vec(&e, 2, &v) || v.n % 2 != 0)
					return -1;
				info->has_groups = true;
				while (v.n > 0 && get_u16(&v, &x)) {
					if (info->ngroups < 24)
						info->groups[info->ngroups++] =
						    (uint16_t)x;
					if (ours_group(groups, ngroups, x))
						info->group_match = true;
				}
				break;
			case 43:	/* supported_versions */
				if (!get_vec(&e, 1, &v) || v.n % 2 != 0 ||
				    v.n == 0)
					return -1;
				while (v.n > 0 && get_u16(&v, &x)) {
					/* Skip GREASE (RFC 8701: 0x?a?a). */
					if ((x & 0x0f0f) == 0x0a0a)
						continue;
					if (!have_sv || x < info->min_version)
						info->min_version = (uint16_t)x;
					if (!have_sv || x > info->max_version)
						info->max_version = (uint16_t)x;
					have_sv = true;
				}
				break;
			}
		}
	}
	if (!have_sv && ver >= 0x0301)
		info->min_version = 0x0301;	/* a hello offers up to ver */
	info->parsed = true;
	return 0;
}

const char *
tls_version_name(uint16_t v, char buf[8])
{
	switch (v) {
	case 0x0300: return "SSLv3";
	case 0x0301: return "TLSv1.0";
	case 0x0302: return "TLSv1.1";
	case 0x0303: return "TLSv1.2";
	case 0x0304: return "TLSv1.3";
	}
	snprintf(buf, 8, "0x%04x", v);
	return buf;
}

const char *
tls_alert_name(int d)
{
	switch (d) {
	case 0:   return "close_notify";
	case 10:  return "unexpected_message";
	case 20:  return "bad_record_mac";
	case 22:  return "record_overflow";
	case 40:  return "handshake_failure";
	case 42:  return "bad_certificate";
	case 43:  return "unsupported_certificate";
	case 44:  return "certificate_revoked";
	case 45:  return "certificate_expired";
	case 46:  return "certificate_unknown";
	case 47:  return "illegal_parameter";
	case 48:  return "unknown_ca";
	case 49:  return "access_denied";
	case 50:  return "decode_error";
	case 51:  return "decrypt_error";
	case 70:  return "protocol_version";
	case 71:  return "insufficient_security";
	case 80:  return "internal_error";
	case 86:  return "inappropriate_fallback";
	case 90:  return "user_canceled";
	case 100: return "no_renegotiation";
	case 109: return "missing_extension";
	case 110: return "unsupported_extension";
	case 112: return "unrecognized_name";
	case 113: return "bad_certificate_status_response";
	case 115: return "unknown_psk_identity";
	case 116: return "certificate_required";
	case 120: return "no_application_protocol";
	case TLS_ALERT_ENCRYPTED: return "encrypted";
	}
	return "unknown";
}
