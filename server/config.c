/*
 * config.c - the key table, value parsers and the INI reader.
 *
 * Every key is one row of keys[]: its type, where it lands in struct
 * config, and its range.  The same row serves the file, -o, the flags
 * that are sugar for -o, and --help, so they cannot disagree.
 *
 * The file is read with inih through our own line reader, which counts
 * lines (so an error names its line whatever inih reports) and refuses a
 * line longer than inih's buffer instead of letting it be split in two.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "proxy.h"
#include "tls.h"

enum ktype {
	K_HOSTNAME,
	K_LISTEN,
	K_DOMAIN,
	K_PATH,
	K_NAME,
	K_UINT,
	K_SIZE,
	K_DURATION,
	K_BARE_NEWLINE,
	K_LOG_LEVEL,
	K_LOG_FORMAT,
	K_BOOL,
	K_TLS_VERSION,
	K_PATH_LIST,
	K_DELIVERY,
	K_FAULT,
	K_PROXY_MODE,
	K_CIDR_LIST,
	K_METRICS_LISTEN,
};

struct key {
	const char		*name;
	enum ktype		 type;
	size_t			 off;
	unsigned long long	 min, max;
	const char		*help;
};

#define OFF(f)	offsetof(struct config, f)

static const struct key keys[] = {
	{ "hostname", K_HOSTNAME, OFF(hostname), 0, 0,
	    "our name in the greeting and Received (default: the host name)" },
	{ "listen", K_LISTEN, 0, 0, 0,
	    "ADDR:PORT to listen on, repeatable (default 127.0.0.1:2525)" },
	{ "domain", K_DOMAIN, 0, 0, 0,
	    "a domain we accept mail for, repeatable (default: any)" },
	{ "maildir", K_PATH, OFF(maildir), 0, 0,
	    "Maildir path; %d domain, %l local part (default ./mail)" },
	{ "delivery", K_DELIVERY, OFF(delivery), 0, 0,
	    "maildir | capture | discard | lmtp:unix:PATH | lmtp:ADDR:PORT: "
	    "where messages go (default maildir)" },
	{ "capture_dir", K_PATH, OFF(capture_dir), 0, 0,
	    "directory for ID.eml and ID.json (delivery = capture)" },
	{ "lmtp_timeout", K_DURATION, OFF(lmtp_timeout), 1, 3600,
	    "LMTP: connect, each write, each reply (default 30s)" },
	{ "lmtp_connections", K_UINT, OFF(lmtp_connections), 0, 1000,
	    "LMTP: idle downstream connections kept (default 4)" },
	{ "max_message_size", K_SIZE, OFF(smtp.limits.message_size),
	    1024, 1ULL << 40, "octets, k/M/G suffixes (default 25M)" },
	{ "max_recipients", K_UINT, OFF(smtp.limits.rcpt_max), 100, 100000,
	    "per transaction (default 100)" },
	{ "max_command_line", K_SIZE, OFF(smtp.limits.cmd_line), 512, 4096,
	    "octets with CRLF (default 512)" },
	{ "max_text_line", K_SIZE, OFF(smtp.limits.text_line), 0, 1 << 20,
	    "octets with CRLF in DATA, 0 = no limit (default 1000)" },
	{ "max_errors", K_UINT, OFF(smtp.limits.errors_max), 0, 1000,
	    "bad commands before 421, 0 = no limit (default 10)" },
	{ "max_connections", K_UINT, OFF(max_connections), 1, 1000000,
	    "sessions at once; more wait in the backlog (default 1000)" },
	{ "max_connections_per_ip", K_UINT, OFF(max_connections_per_ip), 0,
	    1000000, "per client address, 0 = no limit (default 50)" },
	{ "max_connection_rate", K_UINT, OFF(max_connection_rate), 0,
	    1000000, "new connections per client address per minute, "
	    "0 = no limit (default 0)" },
	{ "max_messages_per_connection", K_UINT, OFF(smtp.limits.msgs_max),
	    0, 1000000, "accepted messages per session, 0 = no limit "
	    "(default 1000)" },
	{ "greeting_delay", K_DURATION, OFF(greeting_delay), 0, 60,
	    "wait before the 220; talking meanwhile is refused (default 0)" },
	{ "idle_timeout", K_DURATION, OFF(idle_timeout), 1, 86400,
	    "wait for a command or data, s/m/h (default 300s)" },
	{ "min_data_rate", K_UINT, OFF(min_data_rate), 0, 1000000000,
	    "octets/s a message body must keep up, 0 = off (default 500)" },
	{ "dsn", K_BOOL, OFF(smtp.dsn), 0, 0,
	    "offer DSN (RFC 3461); see mxd.conf(5) (default no)" },
	{ "shutdown_grace", K_DURATION, OFF(shutdown_grace), 0, 3600,
	    "time for DATA to finish on SIGTERM (default 30s)" },
	{ "bare_newline", K_BARE_NEWLINE, OFF(smtp.bare_newline), 0, 0,
	    "reject | normalize a bare CR/LF in DATA, a bare LF ending a "
	    "command (default reject)" },
	{ "workers", K_UINT, OFF(workers), 0, WORKERS_MAX,
	    "processes that accept and serve sessions, 0 = one per CPU "
	    "online (default 0)" },
	{ "commit_syncfs", K_BOOL, OFF(commit_syncfs), 0, 0,
	    "group commit: one syncfs per batch, not an fsync per file "
	    "(default no)" },
	{ "delivery_threads", K_UINT, OFF(delivery_threads), 1, 256,
	    "threads for file writes and fsync (default 4)" },
	{ "log_level", K_LOG_LEVEL, OFF(log_level), 0, 0,
	    "error | warn | info | debug (default info)" },
	{ "log_format", K_LOG_FORMAT, OFF(log_format), 0, 0,
	    "logfmt | json (default logfmt)" },
	{ "data_dir", K_PATH, OFF(data_dir), 0, 0,
	    "where mxd keeps its own files (default .)" },
	{ "user", K_NAME, OFF(user), 0, 0,
	    "become this user after binding, as root (default: none)" },
	{ "group", K_NAME, OFF(group), 0, 0,
	    "and this group (default: the user's primary group)" },
	{ "allow_root", K_BOOL, OFF(allow_root), 0, 0,
	    "run as root with no user on a public address (default no)" },
	{ "metrics_listen", K_METRICS_LISTEN, 0, 0, 0,
	    "ADDR:PORT for Prometheus metrics over HTTP (default: off)" },
	{ "tls", K_BOOL, OFF(tls), 0, 0,
	    "offer STARTTLS (default yes)" },
	{ "require_tls", K_BOOL, OFF(require_tls), 0, 0,
	    "530 until STARTTLS, per listener too (default no)" },
	{ "tls_cert", K_PATH_LIST, OFF(tls_certs), 0, 0,
	    "PEM certificate chain, repeatable (default: self-signed)" },
	{ "tls_key", K_PATH_LIST, OFF(tls_keys), 0, 0,
	    "PEM key of the tls_cert at the same position, repeatable" },
	{ "tls_min_version", K_TLS_VERSION, OFF(tls_min_version), 0, 0,
	    "TLSv1.0 | TLSv1.1 | TLSv1.2 | TLSv1.3 (default TLSv1.2)" },
	{ "tls_session_tickets", K_BOOL, OFF(tls_tickets), 0, 0,
	    "resumption by ticket (default yes)" },
	{ "tls_ticket_lifetime", K_DURATION, OFF(tls_ticket_lifetime), 60,
	    604800, "ticket key rotation period (default 12h)" },
	{ "tls_handshake_timeout", K_DURATION, OFF(tls_handshake_timeout),
	    1, 3600, "cut off a stalled handshake (default 30s)" },
	{ "tls_fallback_window", K_DURATION, OFF(tls_fallback_window), 0,
	    604800, "no STARTTLS after a failed handshake, 0 = off (default 0)" },
	{ "tls_ask_client_cert", K_BOOL, OFF(tls_ask_client_cert), 0, 0,
	    "request (never require) a client certificate (default no)" },
	{ "tls_client_ca", K_PATH, OFF(tls_client_ca), 0, 0,
	    "PEM CA bundle to verify client certificates (default none)" },
	{ "proxy_protocol", K_PROXY_MODE, OFF(proxy_protocol), 0, 0,
	    "off | v1 | v2 | any: PROXY header first, per listener too "
	    "(default off)" },
	{ "proxy_trusted", K_CIDR_LIST, 0, 0, 0,
	    "CIDRs that may send a PROXY header, repeatable (default none)" },
	{ "proxy_timeout", K_DURATION, OFF(proxy_timeout), 1, 300,
	    "wait for the PROXY header (default 5s)" },
	{ "fault", K_FAULT, 0, 0, 0,
	    "a fault rule for test harnesses, repeatable (docs/harness.md)" },
};

void
config_print_keys(FILE *f)
{
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		fprintf(f, "  %-28s  %s\n", keys[i].name, keys[i].help);
}

unsigned
config_workers(const struct config *c)
{
	long n;

	if (c->workers != 0)
		return c->workers;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		return 1;
	return n > WORKERS_MAX ? WORKERS_MAX : (unsigned)n;
}

bool
config_wants_tls(const struct config *c)
{
	size_t i;

	for (i = 0; i < c->nlisten; i++)
		if (c->listen[i].tls >= 0 ? c->listen[i].tls : c->tls)
			return true;
	return false;
}

void
config_init(struct config *c)
{
	memset(c, 0, sizeof(*c));
	smtp_config_init(&c->smtp);
	c->max_connections = SMTP_DEF_CONN_MAX;
	c->max_connections_per_ip = SMTP_DEF_CONN_PER_IP;
	c->idle_timeout = SMTP_DEF_IDLE_TIMEOUT;
	c->shutdown_grace = SMTP_DEF_SHUTDOWN_GRACE;
	c->min_data_rate = 500;
	c->delivery_threads = 4;
	c->lmtp_timeout = 30;
	c->lmtp_connections = 4;
	c->log_level = LOG_INFO;
	c->log_format = LOG_LOGFMT;
	c->tls = true;
	c->tls_min_version = 0x0303;
	c->tls_tickets = true;
	c->tls_ticket_lifetime = 12 * 3600;
	c->tls_handshake_timeout = 30;
	c->proxy_timeout = 5;
}

void
config_free(struct config *c)
{
	size_t i;

	for (i = 0; i < c->ndomains; i++)
		free(c->domains[i]);
	free(c->domains);
	free(c->listen);
	free(c->maildir);
	free(c->capture_dir);
	for (i = 0; i < c->nfaults; i++)
		fault_free(&c->faults[i]);
	free(c->faults);
	free(c->proxy_trusted);
	free(c->data_dir);
	free(c->user);
	free(c->group);
	free(c->tls_client_ca);
	for (i = 0; i < c->ntls_certs; i++)
		free(c->tls_certs[i]);
	free(c->tls_certs);
	for (i = 0; i < c->ntls_keys; i++)
		free(c->tls_keys[i]);
	free(c->tls_keys);
	memset(c, 0, sizeof(*c));
}

/* ---- value parsers ---------------------------------------------------- */

static int
parse_uint(const char *v, unsigned long long *out)
{
	char *end;

	if (*v < '0' || *v > '9')
		return -1;
	errno = 0;
	*out = strtoull(v, &end, 10);
	if (errno != 0 || *end != 0)
		return -1;
	return 0;
}

/* "1048576", "512k", "25M", "1G", also "25MiB"/"25MB": binary units. */
static int
parse_size(const char *v, unsigned long long *out)
{
	unsigned long long n, mul = 1;
	char *end;

	if (*v < '0' || *v > '9')
		return -1;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno != 0)
		return -1;
	switch (*end) {
	case 0:	break;
	case 'k': case 'K':	mul = 1ULL << 10; end++; break;
	case 'm': case 'M':	mul = 1ULL << 20; end++; break;
	case 'g': case 'G':	mul = 1ULL << 30; end++; break;
	default:		return -1;
	}
	if (mul > 1 && (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0))
		end += strlen(end);
	if (*end != 0 || (n != 0 && mul > ULLONG_MAX / n))
		return -1;
	*out = n * mul;
	return 0;
}

/* "300", "300s", "5m", "1h", "250ms". */
int
config_parse_duration(const char *v, double *out)
{
	char *end;
	double d;

	if (*v < '0' || *v > '9')
		return -1;
	errno = 0;
	d = strtod(v, &end);
	if (errno != 0)
		return -1;
	if (strcmp(end, "ms") == 0)
		d /= 1000;
	else if (strcmp(end, "m") == 0)
		d *= 60;
	else if (strcmp(end, "h") == 0)
		d *= 3600;
	else if (*end != 0 && strcmp(end, "s") != 0)
		return -1;
	*out = d;
	return 0;
}

static int parse_bool(const char *v, bool *out);

/* "ADDR:PORT [require_tls=yes|no] [tls=yes|no] [proxy=off|v1|v2|any]" */
static int
parse_listen_value(const char *v, struct listen_conf *out, char *why,
    size_t whylen)
{
	char buf[256], *tok, *save = NULL, *eq;
	bool b;

	if (strlen(v) >= sizeof(buf)) {
		snprintf(why, whylen, "value too long");
		return -1;
	}
	strcpy(buf, v);
	tok = strtok_r(buf, " \t", &save);
	if (tok == NULL || config_parse_listen(tok, out) != 0) {
		snprintf(why, whylen, "'%s' is not ADDR:PORT (IPv4 or [IPv6], "
		    "numeric, port 0-65535)", tok ? tok : "");
		return -1;
	}
	while ((tok = strtok_r(NULL, " \t", &save)) != NULL) {
		eq = strchr(tok, '=');
		if (eq != NULL)
			*eq++ = 0;
		if (eq == NULL)
			eq = "yes";
		if (strcmp(tok, "proxy") == 0) {
			if ((out->proxy = proxy_mode_parse(eq)) < 0) {
				snprintf(why, whylen, "proxy=%s: expected off, "
				    "v1, v2 or any", eq);
				return -1;
			}
			continue;
		}
		if (parse_bool(eq, &b) != 0 || (strcmp(tok, "tls") != 0 &&
		    strcmp(tok, "require_tls") != 0)) {
			snprintf(why, whylen, "'%s' is not a listener option "
			    "(tls=yes|no, require_tls=yes|no, "
			    "proxy=off|v1|v2|any)", tok);
			return -1;
		}
		if (strcmp(tok, "tls") == 0)
			out->tls = b;
		else
			out->require_tls = b;
	}
	return 0;
}

int
config_parse_listen(const char *s, struct listen_conf *out)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->addr;
	char host[64];
	const char *colon;
	unsigned long long port;
	size_t hl;

	memset(out, 0, sizeof(*out));
	out->tls = out->require_tls = out->proxy = -1;
	if (strlen(s) >= sizeof(out->text))
		return -1;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (rb == NULL || rb[1] != ':')
			return -1;
		hl = (size_t)(rb - s - 1);
		colon = rb + 1;
		if (hl >= sizeof(host))
			return -1;
		memcpy(host, s + 1, hl);
		host[hl] = 0;
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		out->addrlen = sizeof(*sin6);
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -1;
		hl = (size_t)(colon - s);
		if (hl >= sizeof(host))
			return -1;
		memcpy(host, s, hl);
		host[hl] = 0;
		if (strcmp(host, "*") == 0)
			strcpy(host, "0.0.0.0");
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		out->addrlen = sizeof(*sin);
	}
	if (parse_uint(colon + 1, &port) != 0 || port > 65535)
		return -1;
	if (out->addr.ss_family == AF_INET6)
		sin6->sin6_port = htons((uint16_t)port);
	else
		sin->sin_port = htons((uint16_t)port);
	snprintf(out->text, sizeof(out->text), "%s", s);
	return 0;
}

/*
 * The LMTP server of "delivery = lmtp:...": "unix:/path", or an address
 * literal and port as for listen (no DNS: mxd resolves no names).
 */
static int
parse_lmtp(struct config *c, const char *v, char *err, size_t errlen)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)&c->lmtp_addr;
	struct listen_conf lc;
	const char *path;

	if (strlen(v) >= sizeof(c->lmtp_text)) {
		snprintf(err, errlen, "delivery: lmtp:%s is too long", v);
		return -1;
	}
	memset(&c->lmtp_addr, 0, sizeof(c->lmtp_addr));
	if (strncmp(v, "unix:", 5) == 0) {
		path = v + 5;
		if (*path != '/' || strlen(path) >= sizeof(sun->sun_path)) {
			snprintf(err, errlen, "delivery: lmtp:unix: needs an "
			    "absolute socket path under %zu octets, got '%s'",
			    sizeof(sun->sun_path), path);
			return -1;
		}
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, path, strlen(path) + 1);
		c->lmtp_addrlen = (socklen_t)sizeof(*sun);
	} else {
		if (config_parse_listen(v, &lc) != 0 || v[0] == '*' ||
		    (lc.addr.ss_family == AF_INET ?
		    ((struct sockaddr_in *)&lc.addr)->sin_port :
		    ((struct sockaddr_in6 *)&lc.addr)->sin6_port) == 0) {
			snprintf(err, errlen, "delivery: expected lmtp:unix:PATH"
			    " or lmtp:ADDR:PORT (IPv4, or [IPv6]; no host "
			    "names), got 'lmtp:%s'", v);
			return -1;
		}
		c->lmtp_addr = lc.addr;
		c->lmtp_addrlen = lc.addrlen;
	}
	snprintf(c->lmtp_text, sizeof(c->lmtp_text), "%s", v);
	c->delivery = CONFIG_DELIVERY_LMTP;
	return 0;
}

static int
parse_bool(const char *v, bool *out)
{
	if (strcasecmp(v, "yes") == 0 || strcasecmp(v, "true") == 0 ||
	    strcasecmp(v, "on") == 0 || strcmp(v, "1") == 0)
		*out = true;
	else if (strcasecmp(v, "no") == 0 || strcasecmp(v, "false") == 0 ||
	    strcasecmp(v, "off") == 0 || strcmp(v, "0") == 0)
		*out = false;
	else
		return -1;
	return 0;
}

static int
enum_index(const char *v, const char *const *names)
{
	int i;

	for (i = 0; names[i] != NULL; i++)
		if (strcasecmp(v, names[i]) == 0)
			return i;
	return -1;
}

/* ---- setting one key -------------------------------------------------- */

int
config_set(struct config *c, enum config_src src, const char *name,
    const char *v, char *err, size_t errlen)
{
	static const char *const bare[] = { "reject", "normalize", NULL };
	static const char *const levels[] = { "error", "warn", "info",
	    "debug", NULL };
	static const char *const formats[] = { "logfmt", "json", NULL };
	static const char *const versions[] = { "TLSv1.0", "TLSv1.1",
	    "TLSv1.2", "TLSv1.3", NULL };
	/* In the order of enum config_delivery. */
	static const char *const deliveries[] = { "maildir", "capture",
	    "discard", NULL };
	const struct key *k = NULL;
	unsigned long long u;
	char *base = (char *)c;
	size_t i;
	int e;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(keys[i].name, name) == 0)
			k = &keys[i];
	if (k == NULL) {
		snprintf(err, errlen, "%s: unknown key", name);
		return -1;
	}

	switch (k->type) {
	case K_HOSTNAME:
		if (!smtp_valid_domain(v, strlen(v))) {
			snprintf(err, errlen, "%s: '%s' is not a domain name",
			    name, v);
			return -1;
		}
		snprintf(c->hostname, sizeof(c->hostname), "%s", v);
		return 0;

	case K_LISTEN: {
		struct listen_conf lc, *nl;
		char why[256];

		if (parse_listen_value(v, &lc, why, sizeof(why)) != 0) {
			snprintf(err, errlen, "%s: %s", name, why);
			return -1;
		}
		if (c->listen_src != src)
			c->nlisten = 0;	/* a later layer replaces */
		c->listen_src = src;
		nl = realloc(c->listen, (c->nlisten + 1) * sizeof(*nl));
		if (nl == NULL)
			goto oom;
		c->listen = nl;
		c->listen[c->nlisten++] = lc;
		return 0;
	}

	case K_DOMAIN: {
		char **nd, *d;

		if (!smtp_valid_domain(v, strlen(v))) {
			snprintf(err, errlen, "%s: '%s' is not a domain name",
			    name, v);
			return -1;
		}
		if (c->domain_src != src) {
			for (i = 0; i < c->ndomains; i++)
				free(c->domains[i]);
			c->ndomains = 0;
		}
		c->domain_src = src;
		d = strdup(v);
		nd = realloc(c->domains, (c->ndomains + 1) * sizeof(*nd));
		if (d == NULL || nd == NULL) {
			free(d);
			if (nd != NULL)
				c->domains = nd;
			goto oom;
		}
		for (i = 0; d[i]; i++)
			if (d[i] >= 'A' && d[i] <= 'Z')
				d[i] = (char)(d[i] + 32);
		c->domains = nd;
		c->domains[c->ndomains++] = d;
		return 0;
	}

	case K_PATH:
	case K_NAME: {
		char **p = (char **)(base + k->off);

		if (*v == 0) {
			snprintf(err, errlen, "%s: empty %s", name,
			    k->type == K_PATH ? "path" : "name");
			return -1;
		}
		free(*p);
		*p = strdup(v);
		if (*p == NULL)
			goto oom;
		return 0;
	}

	case K_UINT:
	case K_SIZE:
		if ((k->type == K_UINT ? parse_uint(v, &u) :
		    parse_size(v, &u)) != 0 || u < k->min || u > k->max) {
			snprintf(err, errlen, "%s: expected %s from %llu to "
			    "%llu, got '%s'", name, k->type == K_UINT ?
			    "a number" : "a size", k->min, k->max, v);
			return -1;
		}
		if (k->off == OFF(smtp.limits.message_size))
			c->smtp.limits.message_size = u;
		else if (k->type == K_SIZE)
			*(size_t *)(base + k->off) = (size_t)u;
		else
			*(unsigned *)(base + k->off) = (unsigned)u;
		return 0;

	case K_DURATION: {
		double d;

		if (config_parse_duration(v, &d) != 0 || d < (double)k->min ||
		    d > (double)k->max) {
			snprintf(err, errlen, "%s: expected a duration from "
			    "%llus to %llus (e.g. 300s, 5m), got '%s'", name,
			    k->min, k->max, v);
			return -1;
		}
		*(double *)(base + k->off) = d;
		return 0;
	}

	case K_BARE_NEWLINE:
		if ((e = enum_index(v, bare)) < 0)
			goto bad_enum;
		c->smtp.bare_newline = (enum smtp_bare_newline)e;
		return 0;
	case K_LOG_LEVEL:
		if ((e = enum_index(v, levels)) < 0)
			goto bad_enum;
		c->log_level = (enum log_level)e;
		return 0;
	case K_LOG_FORMAT:
		if ((e = enum_index(v, formats)) < 0)
			goto bad_enum;
		c->log_format = (enum log_format)e;
		return 0;
	case K_BOOL:
		if (parse_bool(v, (bool *)(base + k->off)) != 0) {
			snprintf(err, errlen, "%s: expected yes or no, got '%s'",
			    name, v);
			return -1;
		}
		return 0;
	case K_TLS_VERSION:
		if ((e = enum_index(v, versions)) < 0)
			goto bad_enum;
		c->tls_min_version = 0x0301 + e;
		return 0;
	case K_DELIVERY:
		if (strncasecmp(v, "lmtp:", 5) == 0)
			return parse_lmtp(c, v + 5, err, errlen);
		if ((e = enum_index(v, deliveries)) < 0)
			goto bad_enum;
		c->delivery = (enum config_delivery)e;
		return 0;
	case K_FAULT: {
		struct fault_rule r, *nf;
		char why[256];

		if (fault_parse(v, &r, why, sizeof(why)) != 0) {
			snprintf(err, errlen, "%s: %s", name, why);
			return -1;
		}
		if (c->fault_src != src) {
			for (i = 0; i < c->nfaults; i++)
				fault_free(&c->faults[i]);
			c->nfaults = 0;
		}
		c->fault_src = src;
		nf = realloc(c->faults, (c->nfaults + 1) * sizeof(*nf));
		if (nf == NULL) {
			fault_free(&r);
			goto oom;
		}
		c->faults = nf;
		c->faults[c->nfaults++] = r;
		return 0;
	}
	case K_PROXY_MODE:
		if ((e = proxy_mode_parse(v)) < 0) {
			snprintf(err, errlen, "%s: '%s' is not one of off v1 v2 "
			    "any", name, v);
			return -1;
		}
		c->proxy_protocol = e;
		return 0;
	case K_CIDR_LIST: {
		char why[256];

		if (c->proxy_trusted_src != src)
			c->nproxy_trusted = 0;	/* a later layer replaces */
		c->proxy_trusted_src = src;
		if (proxy_cidr_add(&c->proxy_trusted, &c->nproxy_trusted, v,
		    why, sizeof(why)) != 0) {
			snprintf(err, errlen, "%s: %s", name, why);
			return -1;
		}
		return 0;
	}
	case K_METRICS_LISTEN:
		/* Empty: off.  Else an address as for listen, no options. */
		if (*v != 0 && config_parse_listen(v, &c->metrics_listen) != 0) {
			snprintf(err, errlen, "%s: '%s' is not ADDR:PORT (IPv4 "
			    "or [IPv6], numeric, port 0-65535), or empty for "
			    "off", name, v);
			return -1;
		}
		c->metrics_on = *v != 0;
		return 0;
	case K_PATH_LIST: {
		bool certs = k->off == OFF(tls_certs);
		char ***list = certs ? &c->tls_certs : &c->tls_keys;
		size_t *n = certs ? &c->ntls_certs : &c->ntls_keys;
		enum config_src *lsrc = certs ? &c->cert_src : &c->key_src;
		char **nl, *d;

		if (*v == 0) {
			snprintf(err, errlen, "%s: empty path", name);
			return -1;
		}
		if (*lsrc != src) {
			for (i = 0; i < *n; i++)
				free((*list)[i]);
			*n = 0;
		}
		*lsrc = src;
		d = strdup(v);
		nl = realloc(*list, (*n + 1) * sizeof(*nl));
		if (d == NULL || nl == NULL) {
			free(d);
			if (nl != NULL)
				*list = nl;
			goto oom;
		}
		*list = nl;
		(*list)[(*n)++] = d;
		return 0;
	}
	}
	return 0;

bad_enum: {
	const char *const *names = k->type == K_BARE_NEWLINE ? bare :
	    k->type == K_LOG_LEVEL ? levels : k->type == K_LOG_FORMAT ?
	    formats : k->type == K_DELIVERY ? deliveries : versions;
	size_t o;

	o = (size_t)snprintf(err, errlen, "%s: '%s' is not one of", name, v);
	for (; *names != NULL && o < errlen; names++)
		o += (size_t)snprintf(err + o, errlen - o, " %s", *names);
	if (k->type == K_DELIVERY && o < errlen)
		snprintf(err + o, errlen - o, " lmtp:unix:PATH lmtp:ADDR:PORT");
	return -1;
}
oom:
	snprintf(err, errlen, "%s: out of memory", name);
	return -1;
}

/* ---- the file --------------------------------------------------------- */

struct file_ctx {
	struct config	*c;
	FILE		*f;
	const char	*path;
	int		 line;
	int		 err_line;
	bool		 failed;
	char		*err;
	size_t		 errlen;
};

/* "[fault]", maybe with blanks or a comment after it. */
static bool
known_section(const char *p)
{
	if (strncmp(p, "[fault]", 7) != 0)
		return false;
	p += 7;
	p += strspn(p, " \t\r\n");
	return *p == 0 || *p == ';' || *p == '#';
}

/* inih's reader: one line at a time, counted, over-long lines refused. */
static char *
read_line(char *str, int num, void *stream)
{
	struct file_ctx *x = stream;
	size_t n;

	const char *p;

	if (x->failed || fgets(str, num, x->f) == NULL)
		return NULL;
	x->line++;
	n = strlen(str);
	if (n == (size_t)num - 1 && str[n - 1] != '\n' && !feof(x->f)) {
		snprintf(x->err, x->errlen, "%s:%d: line longer than %d octets",
		    x->path, x->line, num - 2);
		x->failed = true;
		x->err_line = x->line;
		return NULL;
	}
	/*
	 * Sections: [fault] alone is defined; any other "[name]" is an
	 * error, named here, at its own line, even when no key follows.
	 */
	for (p = str; *p == ' ' || *p == '\t'; p++)
		;
	if (*p == '[' && !known_section(p)) {
		snprintf(x->err, x->errlen, "%s:%d: unknown section %.*s",
		    x->path, x->line, (int)strcspn(p, "\r\n"), p);
		x->failed = true;
		x->err_line = x->line;
		return NULL;
	}
	return str;
}

static int
on_key(void *user, const char *section, const char *name, const char *value)
{
	struct file_ctx *x = user;
	char why[512];

	/* read_line() refuses every other [section] before inih sees it. */
	if (x->failed)
		return 0;
	if (strcmp(section, "fault") == 0) {
		/* [fault]: "rule = RULE" lines, each a "fault" key. */
		if (strcmp(name, "rule") != 0) {
			snprintf(x->err, x->errlen, "%s:%d: [fault]: unknown "
			    "key %s (expected rule = RULE)", x->path,
			    x->line, name);
			x->failed = true;
			x->err_line = x->line;
			return 0;
		}
		name = "fault";
	}
	if (config_set(x->c, CONFIG_SRC_FILE, name, value, why,
	    sizeof(why)) != 0) {
		snprintf(x->err, x->errlen, "%s:%d: %s", x->path, x->line,
		    why);
		x->failed = true;
		x->err_line = x->line;
		return 0;
	}
	return 1;
}

int
config_load_file(struct config *c, const char *path, char *err,
    size_t errlen)
{
	struct file_ctx x = { c, NULL, path, 0, 0, false, err, errlen };
	int r;

	x.f = fopen(path, "r");
	if (x.f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	r = ini_parse_stream(read_line, &x, on_key, &x);
	fclose(x.f);
	/* inih goes on after a syntax error: report whichever came first. */
	if (x.failed && (r <= 0 || x.err_line == 0 || x.err_line <= r))
		return -1;
	if (r != 0) {
		snprintf(err, errlen, "%s:%d: syntax error (expected "
		    "'key = value', '[section]' or a comment)", path, r);
		return -1;
	}
	return 0;
}

int
config_finish(struct config *c, char *err, size_t errlen)
{
	char err2[256];

	if (c->hostname[0] == 0) {
		char h[256];

		if (gethostname(h, sizeof(h)) != 0 ||
		    !smtp_valid_domain(h, strnlen(h, sizeof(h))))
			strcpy(h, "localhost");
		h[sizeof(h) - 1] = 0;
		snprintf(c->hostname, sizeof(c->hostname), "%s", h);
	}
	c->smtp.hostname = c->hostname;
	if (c->nlisten == 0 && config_set(c, CONFIG_SRC_DEFAULT, "listen",
	    "127.0.0.1:2525", err2, sizeof(err2)) != 0) {
		snprintf(err, errlen, "%s", err2);
		return -1;
	}
	if ((c->maildir == NULL && (c->maildir = strdup("./mail")) == NULL) ||
	    (c->data_dir == NULL && (c->data_dir = strdup(".")) == NULL)) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (const char *p = c->maildir; *p; p++) {
		if (*p != '%')
			continue;
		p++;
		if (*p != 'd' && *p != 'l' && *p != '%') {
			snprintf(err, errlen, "maildir: '%%%c' in '%s' is not "
			    "%%d (domain), %%l (local part) or %%%%",
			    *p ? *p : ' ', c->maildir);
			return -1;
		}
	}
	if (c->delivery == CONFIG_DELIVERY_CAPTURE && c->capture_dir == NULL) {
		snprintf(err, errlen, "capture_dir: required with delivery = "
		    "capture (or give --capture DIR)");
		return -1;
	}
	if (c->ntls_certs != c->ntls_keys) {
		snprintf(err, errlen, "tls_cert and tls_key: %zu certificates "
		    "but %zu keys; give them in pairs", c->ntls_certs,
		    c->ntls_keys);
		return -1;
	}
	if (c->tls_ask_client_cert == false && c->tls_client_ca != NULL) {
		snprintf(err, errlen, "tls_client_ca is set but "
		    "tls_ask_client_cert is no");
		return -1;
	}
	if (config_wants_tls(c) && c->tls_min_version > tls_max_version()) {
		snprintf(err, errlen, "tls_min_version: this build's TLS "
		    "library (mbedTLS %s) goes up to TLSv1.%d only",
		    tls_library_version(), (tls_max_version() & 0xff) - 1);
		return -1;
	}
	for (size_t i = 0; i < c->nlisten; i++) {
		const struct listen_conf *l = &c->listen[i];
		bool tls = l->tls >= 0 ? l->tls : c->tls;
		bool req = l->require_tls >= 0 ? l->require_tls :
		    c->require_tls;

		int proxy = l->proxy >= 0 ? l->proxy : c->proxy_protocol;

		if (req && !tls) {
			snprintf(err, errlen, "listen %s: require_tls needs "
			    "tls", l->text);
			return -1;
		}
		/* No default trust: an open PROXY listener lets anyone
		 * claim any address (mxd.conf(5), proxy_trusted). */
		if (proxy != SMTP_PROXY_OFF && c->nproxy_trusted == 0) {
			snprintf(err, errlen, "listen %s: proxy_protocol %s "
			    "needs proxy_trusted (no peer is trusted by "
			    "default)", l->text, proxy_mode_name(proxy));
			return -1;
		}
	}
	for (size_t i = 0; i < c->nfaults; i++) {
		const struct fault_rule *r = &c->faults[i];

		if (r->target == FT_TLS && !config_wants_tls(c)) {
			snprintf(err, errlen, "fault %s: no listener offers "
			    "STARTTLS (tls = no)", r->text);
			return -1;
		}
		/* Command rules ride on proto's hook; it costs when on. */
		if (fault_target_of(fault_target_name(r->target)) >= 0 &&
		    r->action != FA_HIDE)
			c->smtp.hook_commands = true;
	}
	if (c->group != NULL && c->user == NULL) {
		snprintf(err, errlen, "group: needs user (mxd changes its "
		    "group only when it drops root for user)");
		return -1;
	}
	if (c->smtp.limits.text_line != 0 && c->smtp.limits.text_line < 1000) {
		snprintf(err, errlen, "max_text_line: RFC 5321 4.5.3.1.6 "
		    "requires at least 1000 octets (or 0 for no limit)");
		return -1;
	}
	return 0;
}
