/*
 * delivery_maildir.c - the Maildir backend (cr.yp.to/proto/maildir.html).
 *
 * A message is written to tmp/NAME, fsynced and closed, then renamed to
 * new/NAME (or, for several target Maildirs, linked into each new/ and
 * unlinked from tmp/), and each new/ directory is fsynced, all before the
 * commit reports success.  Messages are committed in batches (group
 * commit, maildir_commit_batch()): one directory fsync covers the
 * renames of every message in the batch.  A reader (an IMAP server) looks only in new/
 * and cur/, so a crash at any step leaves at most a file in tmp/, which
 * readers ignore.  Any failure after a link rolls the links back, so a
 * 4xx never leaves a copy that the client's retry would duplicate.
 *
 * The path may be a template: %d is the recipient's domain and %l its
 * local part, lower-cased and made safe for a file name; %% is a '%'.
 * All target Maildirs must be on one file system (link(2)).
 *
 * Everything here except maildir_setup() runs in a worker thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "config.h"
#include "delivery_int.h"

struct maildir {
	const char	*path;		/* the template, or the plain path */
	char		*plain;		/* a path without %d/%l, %% undone */
	bool		 is_template;
	long		 pid;		/* for the names: a syscall a message */
};

/* mkdir -p, mode 0700 for what it creates (capture uses it too). */
int
delivery_mkdirs(const char *path)
{
	return delivery_mkdirs_owned(path, (uid_t)-1, (gid_t)-1);
}

/*
 * fsync the directory that holds the entry tmp[0..end) names: "." for
 * a name with no '/', "/" for one right under the root.
 */
static int
fsync_parent(char *tmp, size_t end)
{
	size_t j = end;
	char c;
	int e;

	while (j > 0 && tmp[j - 1] != '/')
		j--;
	if (j == 0)
		return delivery_fsync_dir(".");
	if (j == 1)
		return delivery_fsync_dir("/");
	c = tmp[j - 1];
	tmp[j - 1] = 0;
	e = delivery_fsync_dir(tmp);
	tmp[j - 1] = c;
	return e;
}

/*
 * The same, what it creates owned by uid:gid (-1: unchanged).  Each
 * directory it creates has its entry made durable (its parent fsynced),
 * so that the first message into a new mailbox (maildir = %d/%l) is not
 * acknowledged before the directories that lead to it are on disk.
 */
int
delivery_mkdirs_owned(const char *path, uid_t uid, gid_t gid)
{
	char tmp[PATH_MAX];
	size_t i, n = strlen(path);
	int e;

	if (n == 0 || n >= sizeof(tmp))
		return ENAMETOOLONG;
	memcpy(tmp, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (tmp[i] != '/' && tmp[i] != 0)
			continue;
		tmp[i] = 0;
		if (mkdir(tmp, 0700) == 0) {
			if (chown(tmp, uid, gid) != 0)
				return errno;
			if ((e = fsync_parent(tmp, i)) != 0)
				return e;
		} else if (errno != EEXIST) {
			return errno;
		}
		tmp[i] = i < n ? '/' : 0;
	}
	return 0;
}

static int
make_maildir(const char *base)
{
	static const char *const sub[] = { "tmp", "new", "cur" };
	char p[PATH_MAX];
	size_t i;
	int e;

	for (i = 0; i < 3; i++) {
		if ((size_t)snprintf(p, sizeof(p), "%s/%s", base, sub[i]) >=
		    sizeof(p))
			return ENAMETOOLONG;
		if ((e = delivery_mkdirs(p)) != 0)
			return e;
	}
	return 0;
}

/*
 * One path component from client text, made safe and kept distinct:
 * lower case (mailboxes are matched without case), [a-z0-9.+_-] kept,
 * every other octet (a '/', a space, each octet of a UTF-8 character)
 * written as '=' and two hex digits, and a leading dot too.  So no two
 * different addresses share a Maildir, and none escapes the template:
 * "", "." and ".." cannot come out.
 */
#define COMPONENT_MAX	200	/* well under NAME_MAX (255) */

static void
safe_component(char *out, size_t outlen, const char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	uint64_t h = 14695981039346656037ULL;
	size_t i, o = 0;

	if (n == 0 && outlen > 1)
		out[o++] = '=';
	for (i = 0; i < n && o + 4 <= outlen; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c + 32);
		h = (h ^ c) * 1099511628211ULL;
		if (((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '+' || c == '_' || c == '-' || c == '.') &&
		    !(i == 0 && c == '.')) {
			out[o++] = (char)c;
		} else {
			out[o++] = '=';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = 0;
	/*
	 * Encoding can triple a name: past COMPONENT_MAX, keep a prefix
	 * and add a 64-bit FNV-1a hash of the whole (lower-cased) name, so
	 * the file system takes it and names stay apart.
	 */
	if (o > COMPONENT_MAX && outlen > COMPONENT_MAX) {
		o = COMPONENT_MAX - 17;
		out[o++] = '=';
		for (i = 0; i < 16; i++)
			out[o++] = hex[(h >> (60 - 4 * i)) & 15];
		out[o] = 0;
	}
}

static int
expand(const struct maildir *m, const struct delivery_rcpt *r,
    const char *hostname, char *out, size_t outlen)
{
	char local[SMTP_LOCAL_MAX * 3 + 4], domain[SMTP_DOMAIN_MAX * 3 + 4];
	const char *p, *dom;
	size_t o = 0, n;

	dom = r->addr[r->local_len] == '@' ? r->addr + r->local_len + 1 :
	    hostname;	/* <postmaster> is ours */
	safe_component(local, sizeof(local), r->addr, r->local_len);
	safe_component(domain, sizeof(domain), dom, strlen(dom));
	for (p = m->path; *p; p++) {
		const char *ins = NULL;
		char one[2] = { *p, 0 };

		if (*p == '%') {
			p++;
			ins = *p == 'd' ? domain : *p == 'l' ? local : "%";
		} else {
			ins = one;
		}
		n = strlen(ins);
		if (o + n >= outlen)
			return ENAMETOOLONG;
		memcpy(out + o, ins, n);
		o += n;
	}
	out[o] = 0;
	return 0;
}

int
maildir_setup(struct delivery *d, char *err, size_t errlen)
{
	struct maildir *m;
	const char *p;
	int e;

	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	m->path = d->cfg->maildir;
	m->pid = (long)getpid();
	/* config_finish() admitted only %d, %l and %%. */
	for (p = m->path; *p; p++) {
		if (*p != '%')
			continue;
		p++;
		if (*p == 'd' || *p == 'l')
			m->is_template = true;
	}
	if (!m->is_template) {
		/* A plain path: "%%" is a '%' here too. */
		char *q;

		m->plain = strdup(m->path);
		if (m->plain == NULL) {
			snprintf(err, errlen, "out of memory");
			free(m);
			return -1;
		}
		for (p = m->path, q = m->plain; *p; p++) {
			*q++ = *p;
			if (*p == '%' && p[1] == '%')
				p++;
		}
		*q = 0;
		m->path = m->plain;
	}
	if (!m->is_template && (e = make_maildir(m->path)) != 0) {
		snprintf(err, errlen, "maildir: cannot create %s: %s",
		    m->path, strerror(e));
		free(m);
		return -1;
	}
	d->be_data = m;
	snprintf(d->describe, sizeof(d->describe), "maildir:%s", m->path);
	return 0;
}

static void
maildir_destroy(struct delivery *d)
{
	struct maildir *m = d->be_data;

	if (m != NULL)
		free(m->plain);
	free(m);
}

/* The targets, deduplicated, and a unique name; create tmp/NAME. */
static int
open_message(struct delivery_txn *t)
{
	const struct maildir *m = t->d->be_data;
	char path[PATH_MAX];
	struct timeval tv;
	unsigned i, j;
	int e;

	t->targets = calloc(t->nrcpt ? t->nrcpt : 1, sizeof(char *));
	if (t->targets == NULL)
		return ENOMEM;
	for (i = 0; i < (m->is_template ? t->nrcpt : 1); i++) {
		if (!m->is_template)
			snprintf(path, sizeof(path), "%s", m->path);
		else if ((e = expand(m, &t->rcpts[i], t->d->cfg->hostname,
		    path, sizeof(path))) != 0)
			return e;
		for (j = 0; j < t->ntargets; j++)
			if (strcmp(t->targets[j], path) == 0)
				break;
		if (j < t->ntargets)
			continue;
		if (m->is_template && (e = make_maildir(path)) != 0)
			return e;
		if ((t->targets[t->ntargets] = strdup(path)) == NULL)
			return ENOMEM;
		t->ntargets++;
	}

	/* time.M<usec>P<pid>Q<id>.host: unique by the session id. */
	gettimeofday(&tv, NULL);
	snprintf(path, sizeof(path), "%lld.M%06ldP%ldQ%s.%s",
	    (long long)tv.tv_sec, (long)tv.tv_usec, m->pid, t->id,
	    t->d->cfg->hostname);
	if ((t->name = strdup(path)) == NULL)
		return ENOMEM;
	if ((size_t)snprintf(path, sizeof(path), "%s/tmp/%s", t->targets[0],
	    t->name) >= sizeof(path))
		return ENAMETOOLONG;
	if ((t->tmp_path = strdup(path)) == NULL)
		return ENOMEM;
	t->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (t->fd < 0) {
		e = errno;
		free(t->tmp_path);
		t->tmp_path = NULL;
		return e;
	}
	return 0;
}

static int
maildir_write(struct delivery_txn *t, const char *p, size_t n)
{
	ssize_t w;
	int e;

	if (t->fd < 0 && (e = open_message(t)) != 0)
		return e;
	while (n > 0) {
		w = write(t->fd, p, n);
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

int
delivery_fsync_dir(const char *path)
{
	int fd, e = 0;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	if (fsync(fd) != 0)
		e = errno;
	close(fd);
	return e;
}

static bool
target_of(const struct delivery_txn *t, const char *dir)
{
	unsigned i;

	for (i = 0; i < t->ntargets; i++)
		if (strcmp(t->targets[i], dir) == 0)
			return true;
	return false;
}

/* Roll back what publish() linked: not acknowledged, so not visible. */
static void
unpublish(struct delivery_txn *t, unsigned linked)
{
	char path[PATH_MAX];
	unsigned i;

	for (i = 0; i < linked; i++) {
		snprintf(path, sizeof(path), "%s/new/%s", t->targets[i],
		    t->name);
		unlink(path);
	}
}

/* tmp/NAME into each target's new/: 0 or an errno value. */
static int
publish(struct delivery_txn *t)
{
	char path[PATH_MAX];
	unsigned i;
	int e;

	for (i = 0; i < t->ntargets; i++) {
		snprintf(path, sizeof(path), "%s/new/%s", t->targets[i],
		    t->name);
		if (t->ntargets == 1 ? rename(t->tmp_path, path) != 0 :
		    link(t->tmp_path, path) != 0) {
			e = errno;
			unpublish(t, i);
			return e;
		}
	}
	if (t->ntargets > 1)
		unlink(t->tmp_path);
	free(t->tmp_path);
	t->tmp_path = NULL;
	return 0;
}

/* fsync each distinct new/ of pub; a failure undoes whoever used it. */
static void
sync_dirs(struct delivery_txn **pub, unsigned npub)
{
	char path[PATH_MAX];
	unsigned i, j, k;
	int e;

	for (i = 0; i < npub; i++) {
		for (k = 0; pub[i]->err == 0 && k < pub[i]->ntargets; k++) {
			const char *dir = pub[i]->targets[k];
			bool seen = false;

			for (j = 0; j < i && !seen; j++)
				seen = pub[j]->err == 0 &&
				    target_of(pub[j], dir);
			for (j = 0; j < k && !seen; j++)
				seen = strcmp(pub[i]->targets[j], dir) == 0;
			if (seen)
				continue;
			snprintf(path, sizeof(path), "%s/new", dir);
			if ((e = delivery_fsync_dir(path)) == 0)
				continue;
			/* Every message linked there is not durable. */
			for (j = i; j < npub; j++)
				if (pub[j]->err == 0 &&
				    target_of(pub[j], dir)) {
					unpublish(pub[j], pub[j]->ntargets);
					pub[j]->err = e;
				}
		}
	}
}

/*
 * Group commit (delivery_int.h), one step of the pipeline:
 *
 *  1. the data of each file of v: by default each message's own job
 *     already did fsync it (maildir_sync(), on the worker threads, in
 *     parallel); with commit_syncfs, one syncfs(2) on their file system
 *     does it here for all the files of v, together with the renames of
 *     pub, and then each file's fsync is a cheap call that reports that
 *     file's own write-back errors (and does the work for a file on
 *     another file system: a Maildir template can span several);
 *  2. fsync each distinct new/ directory of pub, once (after a syncfs,
 *     cheap, and what POSIX asks for the renames anywhere); pub's
 *     messages are durable now;
 *  3. rename each file of v into new/ (or link it into each target's
 *     new/): the next step's (2) makes that durable.
 *
 * So a message counts as durable only after its own fsync (1), its
 * rename (3), and then the fsync of every directory it was linked into
 * (2 of the next step); any failure undoes its links and removes its
 * file.  One directory fsync serves every message of a batch.
 */
static int
maildir_sync(struct delivery_txn *t)
{
	int e = fsync(t->fd) != 0 ? errno : 0;

	if (close(t->fd) != 0 && e == 0)
		e = errno;
	t->fd = -1;
	return e;
}

static void
maildir_commit_batch(struct delivery_txn **v, unsigned n,
    struct delivery_txn **pub, unsigned npub)
{
	unsigned i;

	/*
	 * commit_syncfs: the files are still open.  Its errors are not
	 * trusted: each file's fsync reports its own.
	 */
	if (n > 0 && v[0]->fd >= 0 && n + npub > 1)
		(void)syncfs(v[0]->fd);
	for (i = 0; i < n; i++)
		if (v[i]->fd >= 0)
			v[i]->err = maildir_sync(v[i]);
	sync_dirs(pub, npub);
	for (i = 0; i < npub; i++)
		if (pub[i]->err != 0)
			delivery_drop_tmp(pub[i]);
	for (i = 0; i < n; i++) {
		if (v[i]->err == 0)
			v[i]->err = publish(v[i]);
		if (v[i]->err != 0)
			delivery_drop_tmp(v[i]);
	}
}

/* Close the message file and remove it from tmp/ (capture uses it too). */
void
delivery_drop_tmp(struct delivery_txn *t)
{
	if (t->fd >= 0) {
		close(t->fd);
		t->fd = -1;
	}
	if (t->tmp_path != NULL) {
		unlink(t->tmp_path);
		free(t->tmp_path);
		t->tmp_path = NULL;
	}
}


const struct delivery_backend delivery_maildir = {
	.name = "maildir",
	.lf_only = true,
	.trace_headers = true,
	.write = maildir_write,
	.sync = maildir_sync,
	.commit_batch = maildir_commit_batch,
	.discard = delivery_drop_tmp,
	.destroy = maildir_destroy,
};
