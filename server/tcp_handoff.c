/* tcp_handoff: TCP connections handed between workers. */
#include "tcp_handoff.h"

#include <errno.h>
#include <ev.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "listener.h"
#include "worker.h"

#define HANDOFF_QUEUE_MAX 1024 /* queued per worker before refusing */
#define HANDOFF_WORKERS 256    /* main.c's MAX_WORKERS: set up before the
				* worker count is known */

struct handoff_mail {
	struct handoff_mail *next;
	int fd, laddr;
	stun_sockaddr peer;
	size_t len;
	uint8_t frame[];
};

struct handoff_box {
	pthread_mutex_t lock;
	struct worker *w;          /* NULL: not running, mail refused */
	ev_async wake;
	struct handoff_mail *head, **tail;
	unsigned n;
};

struct tcp_handoff {
	int n;
	struct handoff_box box[];
};

int tcp_handoff_setup(struct stund_shared *sh)
{
	int n = HANDOFF_WORKERS;
	struct tcp_handoff *h = calloc(1, sizeof(*h) + (size_t)n * sizeof(h->box[0]));

	if (!h)
		return -ENOMEM;
	h->n = n;
	for (int i = 0; i < n; i++) {
		pthread_mutex_init(&h->box[i].lock, NULL);
		h->box[i].tail = &h->box[i].head;
	}
	sh->handoff = h;
	return 0;
}

void tcp_handoff_teardown(struct stund_shared *sh)
{
	struct tcp_handoff *h = sh->handoff;

	if (!h)
		return;
	for (int i = 0; i < h->n; i++)
		pthread_mutex_destroy(&h->box[i].lock);
	free(h);
	sh->handoff = NULL;
}

static struct handoff_box *box_of(struct stund_shared *sh, int id)
{
	struct tcp_handoff *h = sh->handoff;

	return h && id >= 0 && id < h->n ? &h->box[id] : NULL;
}

/* Take the whole queue. */
static struct handoff_mail *take_all(struct handoff_box *b)
{
	struct handoff_mail *m;

	pthread_mutex_lock(&b->lock);
	m = b->head;
	b->head = NULL;
	b->tail = &b->head;
	b->n = 0;
	pthread_mutex_unlock(&b->lock);
	return m;
}

static void deliver(struct ev_loop *loop, ev_async *a, int revents)
{
	struct handoff_box *b = a->data;
	struct handoff_mail *m = take_all(b), *next;

	(void)loop;
	(void)revents;
	for (; m; m = next) {
		next = m->next;
		stream_conn_adopt(b->w, m->laddr, m->fd, &m->peer, m->frame, m->len);
		free(m);
	}
}

int tcp_handoff_worker_start(struct worker *w)
{
	struct handoff_box *b = box_of(w->shared, w->id);

	if (!b)
		return 0;
	ev_async_init(&b->wake, deliver);
	b->wake.data = b;
	ev_async_start(w->loop, &b->wake);
	pthread_mutex_lock(&b->lock);
	b->w = w;
	pthread_mutex_unlock(&b->lock);
	return 0;
}

void tcp_handoff_worker_stop(struct worker *w)
{
	struct handoff_box *b = box_of(w->shared, w->id);
	struct handoff_mail *m, *next;

	if (!b || !b->w)
		return;
	pthread_mutex_lock(&b->lock);
	b->w = NULL;
	pthread_mutex_unlock(&b->lock);
	ev_async_stop(w->loop, &b->wake);
	for (m = take_all(b); m; m = next) {
		next = m->next;
		close(m->fd);
		__atomic_sub_fetch(&w->shared->conns, 1, __ATOMIC_RELAXED);
		free(m);
	}
}

int tcp_handoff_post(struct stund_shared *sh, int to, int fd, int laddr,
		     const stun_sockaddr *peer, const uint8_t *frame, size_t len)
{
	struct handoff_box *b = box_of(sh, to);
	struct handoff_mail *m = b ? malloc(sizeof(*m) + len) : NULL;
	int r = -ENOENT;

	if (m) {
		m->next = NULL;
		m->fd = fd;
		m->laddr = laddr;
		m->peer = *peer;
		m->len = len;
		memcpy(m->frame, frame, len);
		pthread_mutex_lock(&b->lock);
		if (b->w && b->n < HANDOFF_QUEUE_MAX) {
			*b->tail = m;
			b->tail = &m->next;
			b->n++;
			ev_async_send(b->w->loop, &b->wake);
			m = NULL;
			r = 0;
		}
		pthread_mutex_unlock(&b->lock);
	}
	if (!r)
		return 0;
	free(m);
	close(fd);
	__atomic_sub_fetch(&sh->conns, 1, __ATOMIC_RELAXED);
	return b ? -EBUSY : r;
}
