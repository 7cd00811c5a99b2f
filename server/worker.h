/*
 * worker.h - blocking work (file writes, fsync, rename) off the event loop.
 *
 * A fixed pool of threads takes jobs from one queue and runs job->run()
 * there; the loop thread is then woken through an ev_async and calls
 * job->done() for each finished job, in the loop thread.  run() must not
 * touch anything the loop owns; done() may.  Disk calls block whatever
 * the event loop says about the fd (libev ev.pod, "files"), hence this.
 */
#ifndef MXD_WORKER_H
#define MXD_WORKER_H

#include <ev.h>

struct job {
	void		(*run)(struct job *);	/* in a worker thread */
	void		(*done)(struct job *);	/* in the loop thread */
	struct job	*next;
};

struct worker_pool;

struct worker_pool	*worker_pool_create(struct ev_loop *loop,
			    unsigned nthreads);
void			 worker_submit(struct worker_pool *p, struct job *j);
/* Jobs queued or running. */
unsigned		 worker_pending(const struct worker_pool *p);
/* Waits for queued jobs to finish (their done() runs), then frees. */
void			 worker_pool_destroy(struct worker_pool *p);

#endif
