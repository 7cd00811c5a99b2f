/*
 * privdrop.c - dropping root after the binds, and the rule for running
 * as root at all.
 *
 * Why: mxd parses hostile input from the whole network.  Root is needed
 * for port 25 and for root-only key files, both done before the first
 * client is accepted; after that a bug in the parser should yield an
 * unprivileged user, not the machine.  So, as root:
 *
 *   - with user: bind, read the keys, then initgroups, setgid, setuid
 *     (the saved ids too), and check that setuid(0) now fails;
 *   - without user, on a listener that is not loopback: refuse to start,
 *     unless allow_root (--allow-root) says so;
 *   - without user, on loopback alone: start, with one warn line, so a
 *     quick start or a test harness run as root keeps working (only this
 *     machine can reach it).
 *
 * The directories mxd writes after the drop (the Maildir's tmp/ and
 * new/, capture_dir, data_dir) are checked as the new user, and a start
 * that could not store mail stops with the directory named.
 *
 * glibc applies setuid/setgid/setgroups to every thread of the process
 * (the delivery threads are already running), as POSIX requires.
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "delivery_int.h"
#include "log.h"
#include "privdrop.h"
#include "sd.h"

/* The directories mxd writes after the drop, with the key that set each. */
#define DIRS_MAX	5

struct wdir {
	const char	*key;
	char		 path[PATH_MAX];
};

static size_t
write_dirs(const struct config *cfg, struct wdir *d)
{
	static const char *const sub[] = { "tmp", "new", "cur" };
	const char *pct;
	size_t n = 0, i, len;

	if (cfg->delivery == CONFIG_DELIVERY_MAILDIR) {
		pct = strchr(cfg->maildir, '%');
		if (pct == NULL) {
			for (i = 0; i < 3; i++) {
				d[n].key = "maildir";
				snprintf(d[n++].path, sizeof(d->path), "%s/%s",
				    cfg->maildir, sub[i]);
			}
		} else {
			/* A template: the fixed directory above the first %. */
			len = (size_t)(pct - cfg->maildir);
			while (len > 0 && cfg->maildir[len - 1] != '/')
				len--;
			d[n].key = "maildir";
			snprintf(d[n++].path, sizeof(d->path), "%.*s",
			    (int)(len ? len : 1), len ? cfg->maildir : ".");
		}
	}
	if (cfg->delivery == CONFIG_DELIVERY_CAPTURE) {
		d[n].key = "capture_dir";
		snprintf(d[n++].path, sizeof(d->path), "%s", cfg->capture_dir);
	}
	d[n].key = "data_dir";
	snprintf(d[n++].path, sizeof(d->path), "%s", cfg->data_dir);
	return n;
}

int
privdrop_lookup(const struct config *cfg, uid_t *uid, gid_t *gid,
    char *err, size_t errlen)
{
	struct passwd *pw;
	struct group *gr;

	if (cfg->user == NULL)
		return 0;
	errno = 0;
	pw = getpwnam(cfg->user);
	if (pw == NULL) {
		snprintf(err, errlen, "user: no such user '%s'%s%s", cfg->user,
		    errno ? ": " : "", errno ? strerror(errno) : "");
		return -1;
	}
	if (pw->pw_uid == 0) {
		snprintf(err, errlen, "user: '%s' is root (uid 0): name an "
		    "unprivileged user", cfg->user);
		return -1;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	if (cfg->group == NULL)
		return 0;
	errno = 0;
	gr = getgrnam(cfg->group);
	if (gr == NULL) {
		snprintf(err, errlen, "group: no such group '%s'%s%s",
		    cfg->group, errno ? ": " : "", errno ? strerror(errno) : "");
		return -1;
	}
	if (gr->gr_gid == 0) {
		snprintf(err, errlen, "group: '%s' is gid 0: name an "
		    "unprivileged group", cfg->group);
		return -1;
	}
	*gid = gr->gr_gid;
	return 0;
}

/* 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104. */
static bool
is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	} else {
		const struct sockaddr_in6 *s6 =
		    (const struct sockaddr_in6 *)ss;
		const unsigned char *a = s6->sin6_addr.s6_addr;

		return IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) && a[12] == 127);
	}
}

int
privdrop_root_check(const struct config *cfg, const struct sd_listen *sl,
    char *err, size_t errlen)
{
	const char *exposed = NULL;
	size_t i;

	if (geteuid() != 0 || cfg->user != NULL)
		return 0;
	for (i = 0; !sd_listen_replaces_default(sl, cfg) && i < cfg->nlisten;
	    i++)
		if (!is_loopback(&cfg->listen[i].addr) && exposed == NULL)
			exposed = cfg->listen[i].text;
	for (i = 0; sl != NULL && i < sl->n; i++)
		if (!is_loopback(&sl->socks[i].conf.addr) && exposed == NULL)
			exposed = sl->socks[i].conf.text;
	if (exposed != NULL && !cfg->allow_root) {
		snprintf(err, errlen, "running as root with a listener open to "
		    "the network (%s) and no user: set user = NAME (mxd drops "
		    "root after binding), or allow_root = yes (--allow-root) "
		    "to serve as root anyway", exposed);
		return -1;
	}
	log_msg(LOG_WARN, "root", "serving as root (%s): set user = NAME to "
	    "drop privileges after binding", exposed != NULL ? "allow_root" :
	    "loopback listeners only");
	return 0;
}

int
privdrop_prepare(const struct config *cfg, char *err, size_t errlen)
{
	struct wdir d[DIRS_MAX];
	size_t i, n;
	uid_t uid;
	gid_t gid;
	int e;

	if (cfg->user == NULL || geteuid() != 0)
		return 0;
	if (privdrop_lookup(cfg, &uid, &gid, err, errlen) != 0)
		return -1;
	n = write_dirs(cfg, d);
	for (i = 0; i < n; i++) {
		if ((e = delivery_mkdirs_owned(d[i].path, uid, gid)) != 0) {
			snprintf(err, errlen, "%s: cannot create %s for user "
			    "%s: %s", d[i].key, d[i].path, cfg->user,
			    strerror(e));
			return -1;
		}
	}
	return 0;
}

/* After the drop: can we write where we must? */
static int
check_dirs(const struct config *cfg, char *err, size_t errlen)
{
	struct wdir d[DIRS_MAX];
	struct stat st;
	size_t i, n;

	n = write_dirs(cfg, d);
	for (i = 0; i < n; i++) {
		if (access(d[i].path, R_OK | W_OK | X_OK) == 0)
			continue;
		if (stat(d[i].path, &st) == 0)
			snprintf(err, errlen, "%s: %s is not writable by user "
			    "%s (owner uid %u, mode %04o): chown it to %s",
			    d[i].key, d[i].path, cfg->user,
			    (unsigned)st.st_uid, (unsigned)st.st_mode & 07777,
			    cfg->user);
		else
			snprintf(err, errlen, "%s: %s: %s (as user %s)",
			    d[i].key, d[i].path, strerror(errno), cfg->user);
		return -1;
	}
	return 0;
}

int
privdrop(const struct config *cfg, char *err, size_t errlen)
{
	uid_t uid = 0;
	gid_t gid = 0;

	if (cfg->user == NULL)
		return 0;
	if (privdrop_lookup(cfg, &uid, &gid, err, errlen) != 0)
		return -1;
	if (geteuid() != 0) {
		/* Started as the user already (systemd's User=). */
		if (getuid() == uid && geteuid() == uid)
			return check_dirs(cfg, err, errlen);
		snprintf(err, errlen, "user = %s: mxd runs as uid %u, not "
		    "root, and cannot become uid %u", cfg->user,
		    (unsigned)geteuid(), (unsigned)uid);
		return -1;
	}
	if (initgroups(cfg->user, gid) != 0 ||
	    setresgid(gid, gid, gid) != 0 ||
	    setresuid(uid, uid, uid) != 0) {
		snprintf(err, errlen, "user = %s: cannot drop privileges: %s",
		    cfg->user, strerror(errno));
		return -1;
	}
	/* For good: no way back to root, nor to root's group. */
	if (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0 ||
	    getuid() != uid || geteuid() != uid || getgid() != gid ||
	    getegid() != gid) {
		snprintf(err, errlen, "user = %s: privileges were not dropped "
		    "for good (root could be regained)", cfg->user);
		return -1;
	}
	if (check_dirs(cfg, err, errlen) != 0)
		return -1;
	log_msg(LOG_INFO, "privileges", "dropped root: now user %s uid %u "
	    "gid %u", cfg->user, (unsigned)uid, (unsigned)gid);
	return 0;
}
