/* worker: a thread with its own libev loop and SO_REUSEPORT sockets. */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "listener.h"
#include "listener_tls.h"
#include "log.h"
#include "rdv_service.h"
#include "turn_dispatch.h"

#define DRAIN_TIMEOUT 5.0 /* seconds SIGTERM waits for connections to flush */

const char *transport_name(enum transport tp)
{
	static const char *const names[] = { "udp", "tcp", "tls", "dtls" };

	return (unsigned)tp < 4 ? names[tp] : "?";
}

/* --- listening address set ------------------------------------------------ */

static bool is_wildcard(const stun_sockaddr *a)
{
	static const struct in6_addr any6 = IN6ADDR_ANY_INIT;

	if (a->sa.sa_family == AF_INET)
		return a->in4.sin_addr.s_addr == htonl(INADDR_ANY);
	return !memcmp(&a->in6.sin6_addr, &any6, sizeof(any6));
}

static int add_laddr(struct laddr_set *s, const stun_sockaddr *ip, uint16_t port)
{
	struct laddr *l = &s->a[s->n];

	memset(l, 0, sizeof(*l));
	l->addr = *ip;
	if (ip->sa.sa_family == AF_INET)
		l->addr.in4.sin_port = htons(port);
	else
		l->addr.in6.sin6_port = htons(port);
	l->wildcard = is_wildcard(ip);
	l->alt_ip = l->alt_port = l->alt_both = -1;
	return s->n++;
}

/* The first two non-wildcard addresses of a family, or -1. */
static void pair_of_family(const struct config *c, int family, int *a1, int *a2)
{
	*a1 = *a2 = -1;
	for (int i = 0; i < c->n_listen_ip; i++) {
		const stun_sockaddr *ip = &c->listen_ip[i];

		if (ip->sa.sa_family != family || is_wildcard(ip))
			continue;
		if (*a1 < 0)
			*a1 = i;
		else if (*a2 < 0)
			*a2 = i;
	}
}

/* RFC 5780 s6: A1:P1, A1:P2, A2:P1, A2:P2, each knowing the others. */
static void add_quad(struct laddr_set *s, const struct config *c, int i1, int i2)
{
	uint16_t p1 = c->listening_port, p2 = c->alt_listening_port;
	int a1p1 = add_laddr(s, &c->listen_ip[i1], p1);
	int a1p2 = add_laddr(s, &c->listen_ip[i1], p2);
	int a2p1 = add_laddr(s, &c->listen_ip[i2], p1);
	int a2p2 = add_laddr(s, &c->listen_ip[i2], p2);
	const int q[4] = { a1p1, a1p2, a2p1, a2p2 };

	for (int k = 0; k < 4; k++) {
		int ip = k >> 1, port = k & 1;
		struct laddr *l = &s->a[q[k]];

		l->alt_ip = q[(!ip) << 1 | port];
		l->alt_port = q[ip << 1 | !port];
		l->alt_both = q[(!ip) << 1 | !port];
	}
}

void laddr_set_build(struct laddr_set *s, const struct config *c)
{
	int pairs[2][2];
	const int fams[2] = { AF_INET, AF_INET6 };

	s->n = 0;
	for (int f = 0; f < 2; f++) {
		pair_of_family(c, fams[f], &pairs[f][0], &pairs[f][1]);
		if (pairs[f][1] >= 0)
			add_quad(s, c, pairs[f][0], pairs[f][1]);
	}
	for (int i = 0; i < c->n_listen_ip; i++) {
		int f = c->listen_ip[i].sa.sa_family == AF_INET ? 0 : 1;

		if (pairs[f][1] >= 0 && (i == pairs[f][0] || i == pairs[f][1]))
			continue;
		add_laddr(s, &c->listen_ip[i], c->listening_port);
	}
}

/* --- sockets ------------------------------------------------------------- */

int worker_socket(int type, const stun_sockaddr *addr, char *err, size_t errlen)
{
	char as[64];
	int one = 1, fd, r;

	fd = socket(addr->sa.sa_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    (type == SOCK_STREAM && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one))))
		goto fail;
	if (addr->sa.sa_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)))
		goto fail;
	if (bind(fd, &addr->sa, stun_sockaddr_len(addr)))
		goto fail;
	if (type == SOCK_STREAM && listen(fd, 1024))
		goto fail;
	return fd;
fail:
	r = -errno;
	snprintf(err, errlen, "%s %s: %s", type == SOCK_STREAM ? "tcp" : "udp",
		 stun_sockaddr_str(addr, as, sizeof(as)), strerror(errno));
	if (fd >= 0)
		close(fd);
	return r;
}

/* --- lifecycle ------------------------------------------------------------ */

static int open_sockets(struct worker *w, char *err, size_t errlen)
{
	const struct laddr_set *s = &w->shared->laddrs;
	int r;

	for (int i = 0; i < s->n; i++) {
		if (!w->cfg->no_udp && (r = udp_listener_open(&w->udp[i], w, i, err, errlen)))
			return r;
		if (!w->cfg->no_tcp && (r = tcp_listener_open(&w->tcp[i], w, i, err, errlen)))
			return r;
	}
	return tls_worker_open(w, err, errlen);
}

int worker_new(struct worker **out, int id, struct stund_shared *shared,
	       const struct config *cfg, char *err, size_t errlen)
{
	struct worker *w = calloc(1, sizeof(*w));
	int r;

	if (!w)
		return -ENOMEM;
	w->id = id;
	w->shared = shared;
	w->cfg = config_get(cfg);
	for (int i = 0; i < LADDR_MAX; i++) {
		w->udp[i].fd = w->udp[i].tx_fd = w->tcp[i].fd = -1;
		w->udp[i].w = w->tcp[i].w = w;
	}
	w->batch = udp_batch_new();
	if (!w->batch) {
		worker_free(w);
		return -ENOMEM;
	}
	r = open_sockets(w, err, errlen);
	if (r) {
		worker_free(w);
		return r;
	}
	*out = w;
	return 0;
}

static void close_listeners(struct worker *w)
{
	for (int i = 0; i < LADDR_MAX; i++) {
		udp_listener_close(&w->udp[i]);
		tcp_listener_close(&w->tcp[i]);
	}
}

void worker_maybe_finish(struct worker *w)
{
	if (w->draining && !w->conns)
		ev_break(w->loop, EVBREAK_ALL);
}

static void drain_expired(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;

	(void)revents;
	while (w->conns)
		stream_conn_close(w->conns);
	ev_break(loop, EVBREAK_ALL);
}

static void begin_drain(struct worker *w)
{
	struct stream_conn *c, *next;

	if (w->draining)
		return;
	w->draining = true;
	close_listeners(w);
	tls_worker_drain(w);
	for (c = w->conns; c; c = next) {
		next = c->next;
		stream_conn_drain(c);
	}
	ev_timer_init(&w->drain_timer, drain_expired, DRAIN_TIMEOUT, 0);
	w->drain_timer.data = w;
	ev_timer_start(w->loop, &w->drain_timer);
	worker_maybe_finish(w);
}

static void wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	struct worker *w = a->data;
	const struct config *next;

	(void)loop;
	(void)revents;
	next = __atomic_exchange_n(&w->pending, NULL, __ATOMIC_ACQ_REL);
	if (next) {
		config_put(w->cfg);
		w->cfg = next;
		turn_dispatch_worker_reload(w);
		log_msg(LOG_DEBUG, "worker %d: new configuration in use", w->id);
		tls_worker_reload(w);
	}
	if (__atomic_load_n(&w->stop_requested, __ATOMIC_ACQUIRE))
		begin_drain(w);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	ev_run(w->loop, 0);
	ev_async_stop(w->loop, &w->wake);
	ev_timer_stop(w->loop, &w->drain_timer);
	return NULL;
}

int worker_start(struct worker *w)
{
	int r;

	w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	if (!w->loop)
		return -ENOMEM;
	ev_async_init(&w->wake, wake_cb);
	w->wake.data = w;
	ev_async_start(w->loop, &w->wake);
	r = turn_dispatch_worker_start(w);
	if (!r)
		r = rdv_service_worker_start(w);
	if (r)
		return r;
	for (int i = 0; i < LADDR_MAX; i++) {
		udp_listener_start(&w->udp[i]);
		tcp_listener_start(&w->tcp[i]);
	}
	r = tls_worker_start(w);
	if (r)
		return r;
	r = pthread_create(&w->thread, NULL, worker_main, w);
	if (r)
		return -r;
	w->started = true;
	return 0;
}

void worker_set_config(struct worker *w, const struct config *cfg)
{
	const struct config *old;

	old = __atomic_exchange_n(&w->pending, config_get(cfg), __ATOMIC_ACQ_REL);
	if (old)
		config_put(old);
	if (w->started)
		ev_async_send(w->loop, &w->wake);
}

void worker_stop(struct worker *w)
{
	__atomic_store_n(&w->stop_requested, 1, __ATOMIC_RELEASE);
	if (w->started)
		ev_async_send(w->loop, &w->wake);
}

void worker_join(struct worker *w)
{
	if (w->started)
		pthread_join(w->thread, NULL);
	w->started = false;
}

void worker_free(struct worker *w)
{
	if (!w)
		return;
	close_listeners(w);
	tls_worker_free(w);
	while (w->conns)
		stream_conn_close(w->conns);
	if (w->pending)
		config_put(w->pending);
	config_put(w->cfg);
	udp_batch_free(w->batch);
	turn_dispatch_worker_free(w);
	rdv_service_worker_free(w);
	if (w->loop)
		ev_loop_destroy(w->loop);
	free(w);
}
