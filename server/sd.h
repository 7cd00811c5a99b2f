/*
 * sd.h - systemd's socket activation and readiness protocols, spoken
 * directly (no libsystemd): sd_listen_fds(3) and sd_notify(3).
 *
 * Only the daemon (main.c) calls these: the environment belongs to the
 * process, and libmxd's caller decides its own sockets.
 */
#ifndef MXD_SD_H
#define MXD_SD_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* More than this many inherited sockets is taken for a broken setup. */
#define SD_LISTEN_MAX	256

/* One socket passed in LISTEN_FDS. */
struct sd_socket {
	int			 fd;	/* -1 once taken by a listener */
	char			 name[64];	/* from LISTEN_FDNAMES, or "" */
	/* Its bound address, as a listener with the global settings. */
	struct listen_conf	 conf;
};

struct sd_listen {
	struct sd_socket	*socks;
	size_t			 n;
};

/*
 * Take the sockets systemd passed (LISTEN_PID must be ours, LISTEN_FDS
 * of them from fd 3, LISTEN_FDNAMES optional), check that each is a
 * listening TCP socket, set FD_CLOEXEC, and unset the three variables
 * so no child sees them.  0 (sl->n may be 0), or -1 with err.
 */
int	sd_listen_collect(struct sd_listen *sl, char *err, size_t errlen);
/*
 * The inherited socket bound where lc asks (port 0 matches any port on
 * that address), now the caller's; -1 when none is.
 */
int	sd_listen_take(struct sd_listen *sl, const struct listen_conf *lc,
	    const char **name);
/*
 * With sockets inherited and no listen key anywhere, mxd serves the
 * inherited sockets alone, not the default 127.0.0.1:2525 besides.
 */
bool	sd_listen_replaces_default(const struct sd_listen *sl,
	    const struct config *cfg);
/* Close the sockets no listener took; free. */
void	sd_listen_finish(struct sd_listen *sl);

/*
 * NOTIFY_SOCKET: connect to it now (before privileges are dropped, so
 * a root-only socket stays usable), then unset it.  No variable: the
 * later calls do nothing.
 */
void	sd_notify_init(void);
/* Send "READY=1", "STOPPING=1", ...; a failure is logged, not fatal. */
void	sd_notify(const char *state);

#endif
