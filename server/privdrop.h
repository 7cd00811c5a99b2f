/*
 * privdrop.h - running as root only as long as needed (keys user,
 * group, allow_root; mxd.conf(5), mxd.8 "PRIVILEGES").
 *
 * The daemon's order: privdrop_lookup (also for --check), then, before
 * any bind, privdrop_root_check and privdrop_prepare; then bind, read
 * the keys; then privdrop() in the process that serves clients.
 */
#ifndef MXD_PRIVDROP_H
#define MXD_PRIVDROP_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"

struct sd_listen;

/* The uid and gid to become; 0 (nothing to do without user) or -1. */
int	privdrop_lookup(const struct config *cfg, uid_t *uid, gid_t *gid,
	    char *err, size_t errlen);
/*
 * As root without user: refuse (-1 with err) when a listener, configured
 * or inherited (sl may be NULL), is on a non-loopback address, unless
 * allow_root; otherwise log one warn line.  0 when not root.
 */
int	privdrop_root_check(const struct config *cfg,
	    const struct sd_listen *sl, char *err, size_t errlen);
/*
 * As root with user: make the directories mxd writes that do not exist
 * yet (Maildir, capture_dir, data_dir), owned by the user, so that the
 * check after the drop finds them usable.  Existing ones are untouched.
 */
int	privdrop_prepare(const struct config *cfg, char *err, size_t errlen);
/*
 * Become user:group for good (supplementary groups, gid, uid), make sure
 * root cannot be regained, and check that the directories mxd writes
 * are usable.  Nothing to do without user.  0, or -1 with err.
 */
int	privdrop(const struct config *cfg, char *err, size_t errlen);

#endif
