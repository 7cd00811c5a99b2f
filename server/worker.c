/*
 * worker.c - the thread pool of worker.h: a mutex-protected FIFO of jobs
 * in, a list of finished jobs out, one ev_async to wake the loop.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#include "worker.h"

struct worker_pool {
	struct ev_loop	*loop;
	ev_async	 wake;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;		/* a job was queued */
	pthread_cond_t	 done_cv;	/* a job finished */
	struct job	*head, *tail;	/* queued */
	struct job	*finished;	/* done, not yet reported */
	unsigned	 pending;	/* loop thread only */
	bool		 stopping;
	unsigned	 nthreads;
	pthread_t	*threads;
};

static void *
worker_main(void *arg)
{
	struct worker_pool *p = arg;
	struct job *j;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->head == NULL && !p->stopping)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->head == NULL)
			break;
		j = p->head;
		p->head = j->next;
		if (p->head == NULL)
			p->tail = NULL;
		pthread_mutex_unlock(&p->mu);

		j->run(j);

		pthread_mutex_lock(&p->mu);
		j->next = p->finished;
		p->finished = j;
		ev_async_send(p->loop, &p->wake);
		pthread_cond_signal(&p->done_cv);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void
report(struct worker_pool *p)
{
	struct job *list, *j, *rev = NULL;

	pthread_mutex_lock(&p->mu);
	list = p->finished;
	p->finished = NULL;
	pthread_mutex_unlock(&p->mu);
	/* Oldest first. */
	while (list != NULL) {
		j = list;
		list = j->next;
		j->next = rev;
		rev = j;
	}
	while (rev != NULL) {
		j = rev;
		rev = j->next;
		p->pending--;
		j->done(j);
	}
}

static void
on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
	report((struct worker_pool *)((char *)w -
	    offsetof(struct worker_pool, wake)));
}

struct worker_pool *
worker_pool_create(struct ev_loop *loop, unsigned nthreads)
{
	struct worker_pool *p;
	unsigned i;

	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	p->threads = calloc(nthreads, sizeof(*p->threads));
	if (p->threads == NULL) {
		free(p);
		return NULL;
	}
	p->loop = loop;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	pthread_cond_init(&p->done_cv, NULL);
	ev_async_init(&p->wake, on_wake);
	ev_async_start(loop, &p->wake);
	/* The pool must not keep the loop alive by itself. */
	ev_unref(loop);
	for (i = 0; i < nthreads; i++) {
		if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0)
			break;
		p->nthreads++;
	}
	if (p->nthreads == 0) {
		worker_pool_destroy(p);
		return NULL;
	}
	return p;
}

void
worker_submit(struct worker_pool *p, struct job *j)
{
	j->next = NULL;
	p->pending++;
	pthread_mutex_lock(&p->mu);
	if (p->tail != NULL)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

unsigned
worker_pending(const struct worker_pool *p)
{
	return p->pending;
}

void
worker_pool_destroy(struct worker_pool *p)
{
	unsigned i;

	if (p == NULL)
		return;
	/*
	 * Run every queued job and its done(), including jobs that a done()
	 * queues (an aborted flush queues the removal of its partial file),
	 * before the threads go.
	 */
	while (p->pending > 0) {
		pthread_mutex_lock(&p->mu);
		while (p->finished == NULL)
			pthread_cond_wait(&p->done_cv, &p->mu);
		pthread_mutex_unlock(&p->mu);
		report(p);
	}
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	report(p);
	ev_ref(p->loop);
	ev_async_stop(p->loop, &p->wake);
	pthread_cond_destroy(&p->cv);
	pthread_cond_destroy(&p->done_cv);
	pthread_mutex_destroy(&p->mu);
	free(p->threads);
	free(p);
}
