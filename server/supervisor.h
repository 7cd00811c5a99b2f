/*
 * supervisor.h - mxd's process model: a supervisor and its workers.
 *
 * The supervisor binds the listeners, maps the shared region (shared.h)
 * and forks `workers` processes that serve sessions on the inherited
 * listening fds.  It never reads a client byte and never touches TLS (a
 * forked child must not share the RNG state: STYLE.md 5): each worker
 * loads the certificates itself.  It restarts a worker that dies (at
 * most once a second per slot), passes SIGTERM/SIGINT on and waits for
 * the drain, and on SIGHUP starts a new generation of workers with the
 * re-read configuration while the old one finishes its sessions.
 */
#ifndef MXD_SUPERVISOR_H
#define MXD_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct sd_listen;

struct supervisor_opts {
	/* A finished config as at start (defaults, file, flags), for
	 * SIGHUP: 0, or -1 with "FILE:LINE: key: why" in err. */
	int	(*load)(struct config *cfg, void *arg, char *err,
		    size_t errlen);
	void	*arg;
	bool	 print_cert;	/* --print-cert-path, at the first start */
	/* Sockets systemd passed (sd.h): served as listeners by every
	 * generation; those not taken stay here (sd_listen_finish). */
	struct sd_listen *inherited;
};

/*
 * Runs mxd on cfg (borrowed for the first generation) until SIGTERM or
 * SIGINT; prints the "listening" lines once every worker is ready.
 * Returns the exit status (1 when the start fails, with the reason on
 * stderr).
 */
int	supervisor_run(const struct config *cfg,
	    const struct supervisor_opts *o);

#endif
