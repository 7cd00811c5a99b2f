/*
 * delivery_int.h - what delivery.c shares with its backends.
 *
 * delivery.c owns the transaction, its buffer and the job plumbing; a
 * backend (delivery_maildir.c, delivery_capture.c) supplies the blocking
 * steps, which run in a worker thread and report failure as an errno
 * value.
 */
#ifndef MXD_DELIVERY_INT_H
#define MXD_DELIVERY_INT_H

#include <stdint.h>
#include <sys/types.h>

#include "delivery.h"
#include "worker.h"

struct delivery_rcpt {
	char		*addr;		/* local@domain, or "postmaster" */
	size_t		 local_len;	/* addr[0..local_len) is the local part */
	unsigned	 notify;	/* SMTP_NOTIFY_*, 0: none given */
	char		*orcpt;		/* "type;xtext" as given, or NULL */
};

struct delivery_backend {
	const char	*name;
	/* Store LF line ends (Maildir's convention) instead of CRLF. */
	bool		 lf_only;
	/* Count the body and drop it (delivery = discard). */
	bool		 drop_body;
	/* Put the Return-Path/Received block before the body. */
	bool		 trace_headers;
	/* ... but no Return-Path: the final delivery adds it (LMTP). */
	bool		 no_return_path;
	/* Loop, at DATA, optional: keep what it needs of the trace. */
	int		(*begin)(struct delivery_txn *t,
			    const struct delivery_trace *tr);
	/* Worker: append buf[0..len) to the message, creating it first.
	 * NULL: the body stays in the txn's buffer, whole (libmxd). */
	int		(*write)(struct delivery_txn *t, const char *p,
			    size_t n);
	/* Worker, with group commit, after the last write unless
	 * commit_syncfs: fsync and close the file (the batch then only
	 * publishes it and syncs directories). */
	int		(*sync)(struct delivery_txn *t);
	/* Worker: make it durable and visible.  NULL: nothing to do. */
	int		(*commit)(struct delivery_txn *t);
	/*
	 * Worker, instead of commit (group commit), one step of a
	 * pipeline: make the data of v[0..n) durable and publish it
	 * (rename into new/), and make durable what the previous step
	 * published, pub[0..npub).  Sets each one's err (for v: 0 when
	 * published, for pub: 0 when durable), and discards each that
	 * failed.  The whole body of each in v has been written.
	 */
	void		(*commit_batch)(struct delivery_txn **v, unsigned n,
			    struct delivery_txn **pub, unsigned npub);
	/* Worker or loop: remove whatever a failed or dropped txn left. */
	void		(*discard)(struct delivery_txn *t);
	void		(*destroy)(struct delivery *d);
};

/*
 * Group commit: messages whose bodies are written wait in `ready`; one
 * step at a time runs commit_batch() in a worker.  A step syncs the
 * data of the messages that waited (v) and publishes them, and syncs
 * the directories of those the step before published (pub): one flush
 * serves two batches.  When it ends, pub's messages are durable and get
 * their answer, v's become the next pub, and the messages that came
 * meanwhile form the next v.  No timer: a batch holds whatever waited
 * when the previous step finished.
 */
struct delivery_batch {
	struct job		 job;		/* first: the worker's handle */
	struct delivery		*d;
	struct delivery_txn	**v;		/* data to sync, to publish */
	unsigned		 n, cap;
	struct delivery_txn	**pub;		/* published, dirs to sync */
	unsigned		 npub, pubcap;
};

struct delivery {
	const struct delivery_backend	*be;
	struct worker_pool		*pool;
	const struct config		*cfg;
	char				 describe[300];
	void				*be_data;	/* backend's own */
	struct delivery_batch		 batch;		/* in flight */
	bool				 batch_busy;
	struct delivery_txn		**ready;	/* waiting for it */
	unsigned			 nready, ready_cap;
	/* Statistics: batches committed, messages in them. */
	unsigned long long		 batches, batched;
};

enum job_kind { JOB_FLUSH, JOB_COMMIT, JOB_BATCHED, JOB_DISCARD };

struct delivery_txn {
	struct job		 job;		/* first: the worker's handle */
	struct delivery		*d;
	enum job_kind		 kind;
	bool			 busy;		/* a job runs */
	bool			 orphan;	/* aborted while busy */
	int			 err;		/* errno of the last job */
	delivery_done_cb	*cb;
	void			*cb_arg;

	char			 id[40];
	char			*sender;	/* "" for <> */
	uint64_t		 size_param;	/* SIZE=, 0: none */
	enum smtp_body		 body;
	bool			 smtputf8;
	bool			 requiretls;
	enum smtp_ret		 ret;
	char			*envid;		/* xtext as given, or NULL */
	struct delivery_rcpt	*rcpts;
	unsigned		 nrcpt;

	/* Body: buf[0..len) not yet handed to the backend. */
	char			*buf;
	size_t			 len, cap;
	bool			 cr_pending;	/* lf_only: a CR ended a slice */
	uint64_t		 size;		/* octets stored so far */

	/* Backend state (Maildir: the file under tmp/, its targets). */
	int			 fd;
	char			*tmp_path;
	char			*name;
	char			**targets;
	unsigned		 ntargets;
	/* Capture: ID.eml's temporary in tmp_path; the metadata. */
	char			*meta;		/* JSON made at DATA, unclosed */
	size_t			 meta_len;
	char			*meta_tmp;	/* its temporary file */
	double			 received;	/* end of data */

	/*
	 * A backend's verdict on a failure, where an errno says too little
	 * (LMTP: unreachable, or refused with the downstream's code), and
	 * what went wrong, for the log.  Set in the worker.
	 */
	enum smtp_msg_result	 verdict;	/* SMTP_MSG_OK: from err */
	int			 reject_code;	/* SMTP_MSG_REJECTED */
	char			 reject_enh[16];
	char			 detail[200];
	void			*be_txn;	/* LMTP: the downstream session */
};

extern const struct delivery_backend delivery_maildir;
int	maildir_setup(struct delivery *d, char *err, size_t errlen);
extern const struct delivery_backend delivery_capture;
int	capture_setup(struct delivery *d, char *err, size_t errlen);
extern const struct delivery_backend delivery_lmtp;
int	lmtp_setup(struct delivery *d, char *err, size_t errlen);
/* libmxd's message callback: the body in memory, handed over by conn.c. */
extern const struct delivery_backend delivery_callback;
extern const struct delivery_backend delivery_discard;
/* mkdir -p, mode 0700 for what it creates: 0 or an errno value. */
int	delivery_mkdirs(const char *path);
int	delivery_mkdirs_owned(const char *path, uid_t uid, gid_t gid);
/* fsync a directory by its path: 0 or an errno value. */
int	delivery_fsync_dir(const char *path);
void	delivery_drop_tmp(struct delivery_txn *t);

#endif
