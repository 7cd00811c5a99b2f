/*
 * delivery_capture.c - the capture backend, for test harnesses
 * (docs/harness.md, "Capture").
 *
 * Each accepted message becomes two files in one directory: ID.eml, the
 * message exactly as the client sent it (CRLF line ends, dot-unstuffed
 * for DATA, no header added), and ID.json, its envelope, session and
 * TLS details.  ID is the id of the "queued as" reply.
 *
 * The order of writes is what a reader may rely on: .ID.eml.tmp is
 * written as the body arrives, then fsynced and closed; .ID.json.tmp is
 * written, fsynced and closed; .ID.eml.tmp is renamed to ID.eml, then
 * .ID.json.tmp to ID.json; then the directory is fsynced, and only then
 * does the client get 250.  So a reader that sees ID.json finds ID.eml
 * whole, and no reader sees half a file under either final name (the
 * temporaries are dot files ending in .tmp, which neither "*.eml" nor
 * "*.json" matches).  Any failure removes what was made, the final names
 * first and the .json before the .eml, so a 4xx leaves nothing and the
 * invariant holds at every step.
 *
 * The JSON is made in two parts: what is known at DATA (envelope,
 * client, TLS, connection) in the loop thread, by capture_begin(), from
 * the trace it is handed and may not keep; the times and the size by the
 * worker at the commit.  Everything else here runs in a worker thread.
 *
 * One fsync of the directory, after both renames: both renames are in
 * it, and until it returns nothing has been acknowledged.  Rejected:
 * one fsync after each rename, which would also order the two on disk
 * across a crash on a file system that does not keep the order of
 * metadata operations by itself; the common journalled ones (ext4,
 * XFS) do, and the cost is a second fsync per message.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "delivery_int.h"
#include "json.h"

int
capture_setup(struct delivery *d, char *err, size_t errlen)
{
	const char *dir = d->cfg->capture_dir;
	struct stat st;
	int e;

	if ((e = delivery_mkdirs(dir)) != 0) {
		snprintf(err, errlen, "capture_dir: cannot create %s: %s",
		    dir, strerror(e));
		return -1;
	}
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "capture_dir: %s is not a directory",
		    dir);
		return -1;
	}
	snprintf(d->describe, sizeof(d->describe), "capture:%s", dir);
	return 0;
}

/* The NOTIFY keywords, in RFC 3461's order, as a JSON array. */
static void
put_notify(struct json_buf *b, unsigned bits)
{
	static const struct {
		unsigned	 bit;
		const char	*name;
	} kw[] = {
		{ SMTP_NOTIFY_NEVER, "NEVER" },
		{ SMTP_NOTIFY_SUCCESS, "SUCCESS" },
		{ SMTP_NOTIFY_FAILURE, "FAILURE" },
		{ SMTP_NOTIFY_DELAY, "DELAY" },
	};
	size_t i;
	bool first = true;

	json_raw(b, "[", 1);
	for (i = 0; i < sizeof(kw) / sizeof(kw[0]); i++) {
		if (!(bits & kw[i].bit))
			continue;
		if (!first)
			json_raw(b, ",", 1);
		json_cstr(b, kw[i].name);
		first = false;
	}
	json_raw(b, "]", 1);
}

/*
 * Loop thread, at DATA: everything up to "connection".  The trace's
 * strings are borrowed for this call only, so they are written out now.
 */
static int
capture_begin(struct delivery_txn *t, const struct delivery_trace *tr)
{
	struct json_buf b = { 0 };
	char reply[128];
	const char *sep = "";
	unsigned i;

	free(t->meta);
	t->meta = NULL;
	smtp_msg_ok_reply(reply, sizeof(reply), t->id);
	json_raw(&b, "{\"id\":", 6);
	json_cstr(&b, t->id);
	json_rawf(&b, ",\"reply\":");
	json_cstr(&b, reply);
	json_rawf(&b, ",\"mail_from\":");
	json_cstr(&b, t->sender);
	json_rawf(&b, ",\"rcpt_to\":[");
	for (i = 0; i < t->nrcpt; i++) {
		if (i > 0)
			json_raw(&b, ",", 1);
		json_cstr(&b, t->rcpts[i].addr);
	}

	json_rawf(&b, "],\"mail_params\":{");
#define PARAM(name) do { json_rawf(&b, "%s\"%s\":", sep, name); sep = ","; \
    } while (0)
	if (t->size_param != 0) {
		PARAM("size");
		json_rawf(&b, "%llu", (unsigned long long)t->size_param);
	}
	if (t->body != SMTP_BODY_NONE) {
		PARAM("body");
		json_cstr(&b, t->body == SMTP_BODY_7BIT ? "7BIT" :
		    "8BITMIME");
	}
	if (t->smtputf8) {
		PARAM("smtputf8");
		json_rawf(&b, "true");
	}
	if (t->requiretls) {
		PARAM("requiretls");
		json_rawf(&b, "true");
	}
	if (t->ret != SMTP_RET_NONE) {
		PARAM("ret");
		json_cstr(&b, t->ret == SMTP_RET_FULL ? "FULL" : "HDRS");
	}
	if (t->envid != NULL) {
		PARAM("envid");
		json_cstr(&b, t->envid);
	}
	json_rawf(&b, "},\"rcpt_params\":[");
	for (i = 0; i < t->nrcpt; i++) {
		json_rawf(&b, "%s{", i > 0 ? "," : "");
		sep = "";
		if (t->rcpts[i].notify != 0) {
			PARAM("notify");
			put_notify(&b, t->rcpts[i].notify);
		}
		if (t->rcpts[i].orcpt != NULL) {
			PARAM("orcpt");
			json_cstr(&b, t->rcpts[i].orcpt);
		}
		json_raw(&b, "}", 1);
	}
#undef PARAM

	json_rawf(&b, "],\"client\":{\"ip\":");
	json_cstr(&b, tr->client_ip);
	json_rawf(&b, ",\"port\":%u},\"helo\":", tr->client_port);
	json_cstr(&b, tr->helo);
	json_rawf(&b, ",\"esmtp\":%s,\"tls\":", tr->esmtp ? "true" : "false");
	if (tr->tls_version == NULL) {
		json_rawf(&b, "null");
	} else {
		json_rawf(&b, "{\"version\":");
		json_cstr(&b, tr->tls_version);
		json_rawf(&b, ",\"cipher\":");
		json_cstr(&b, tr->tls_cipher);
		json_rawf(&b, ",\"sni\":");
		json_cstr(&b, tr->tls_sni);
		json_raw(&b, "}", 1);
	}
	json_rawf(&b, ",\"connection\":{\"number\":%llu,\"session\":",
	    tr->conn_no);
	json_cstr(&b, tr->sid);
	json_raw(&b, "}", 1);
	if (b.failed) {
		json_buf_finish(&b);
		return -1;
	}
	t->meta = b.p;
	t->meta_len = b.len;
	return 0;
}

/* "2026-11-29T02:54:48.123Z" (RFC 3339), from s since the epoch. */
static void
rfc3339(double when, char *buf, size_t len)
{
	long long ms = (long long)(when * 1000 + 0.5);
	time_t s = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&s, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

static int
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* DIR/.ID.SUFFIX.tmp or DIR/ID.SUFFIX, in new memory or NULL. */
static char *
path_of(const struct delivery_txn *t, const char *suffix, bool tmp)
{
	char path[PATH_MAX];

	if ((size_t)snprintf(path, sizeof(path), "%s/%s%s.%s%s",
	    t->d->cfg->capture_dir, tmp ? "." : "", t->id, suffix,
	    tmp ? ".tmp" : "") >= sizeof(path))
		return NULL;
	return strdup(path);
}

/* Create a temporary file exclusively; its path into *pathp. */
static int
create_tmp(struct delivery_txn *t, const char *suffix, char **pathp,
    int *fdp)
{
	int e;

	if ((*pathp = path_of(t, suffix, true)) == NULL)
		return ENAMETOOLONG;
	*fdp = open(*pathp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (*fdp < 0) {
		e = errno;
		free(*pathp);
		*pathp = NULL;
		return e;
	}
	return 0;
}

static int
capture_write(struct delivery_txn *t, const char *p, size_t n)
{
	int e;

	if (t->fd < 0 && (e = create_tmp(t, "eml", &t->tmp_path, &t->fd)) != 0)
		return e;
	return write_all(t->fd, p, n);
}

/* .ID.json.tmp, whole and fsynced; stored is "now". */
static int
write_meta(struct delivery_txn *t)
{
	char tail[200], received[64], stored[64];
	struct timespec ts;
	int fd, e, n;

	clock_gettime(CLOCK_REALTIME, &ts);
	rfc3339(t->received, received, sizeof(received));
	rfc3339((double)ts.tv_sec + ts.tv_nsec / 1e9, stored, sizeof(stored));
	n = snprintf(tail, sizeof(tail), ",\"received\":\"%s\",\"stored\":"
	    "\"%s\",\"size\":%llu}\n", received, stored,
	    (unsigned long long)t->size);
	if (n < 0 || (size_t)n >= sizeof(tail))
		return EOVERFLOW;
	if ((e = create_tmp(t, "json", &t->meta_tmp, &fd)) != 0)
		return e;
	if ((e = write_all(fd, t->meta, t->meta_len)) == 0 &&
	    (e = write_all(fd, tail, (size_t)n)) == 0 && fsync(fd) != 0)
		e = errno;
	if (close(fd) != 0 && e == 0)
		e = errno;
	return e;
}

static int
capture_commit(struct delivery_txn *t)
{
	char *eml = NULL, *json = NULL;
	bool json_renamed = false;
	int e = 0;

	if (t->meta == NULL)
		return EINVAL;		/* no capture_begin(): cannot be */
	if (fsync(t->fd) != 0) {
		e = errno;
		goto out;
	}
	e = close(t->fd) != 0 ? errno : 0;
	t->fd = -1;
	if (e != 0 || (e = write_meta(t)) != 0)
		goto out;
	eml = path_of(t, "eml", false);
	json = path_of(t, "json", false);
	if (eml == NULL || json == NULL) {
		e = ENAMETOOLONG;
		goto out;
	}

	if (rename(t->tmp_path, eml) != 0) {
		e = errno;
		goto out;
	}
	free(t->tmp_path);
	t->tmp_path = NULL;
	if (rename(t->meta_tmp, json) != 0) {
		e = errno;
		goto rollback;
	}
	json_renamed = true;
	free(t->meta_tmp);
	t->meta_tmp = NULL;
	if ((e = delivery_fsync_dir(t->d->cfg->capture_dir)) != 0)
		goto rollback;
	goto out;

rollback:
	/* Not acknowledged, so not visible; the .json never alone. */
	if (json_renamed)
		unlink(json);
	unlink(eml);
out:
	free(eml);
	free(json);
	return e;		/* on failure, discard removes the rest */
}

static void
capture_discard(struct delivery_txn *t)
{
	delivery_drop_tmp(t);
	if (t->meta_tmp != NULL) {
		unlink(t->meta_tmp);
		free(t->meta_tmp);
		t->meta_tmp = NULL;
	}
}

const struct delivery_backend delivery_capture = {
	.name = "capture",
	.lf_only = false,
	.trace_headers = false,
	.begin = capture_begin,
	.write = capture_write,
	.commit = capture_commit,
	.discard = capture_discard,
};
