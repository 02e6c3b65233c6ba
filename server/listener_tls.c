/* listener_tls: STUN over TLS on tls-listening-port (RFC 8489 s6.2.2),
 * STUN framing on the decrypted stream (RFC 8656 s12.5), plus what TLS and
 * DTLS share: the process-wide certificate context and its reload, the
 * per-worker listeners, the connection cap, replies and metrics. */
#include "listener_tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/tcp.h>

#include "dispatch.h"
#include "listener.h"
#include "log.h"
#include "rdv_service.h"
#include "tls.h"
#include "turn_dispatch.h"

struct tls_shared {
	pthread_mutex_t mu;
	struct tls_ctx *ctx;   /* owned reference: for new sessions */
	unsigned generation;   /* bumped on every reload */
	bool tls, dtls;        /* which listeners the workers open */
	uint16_t port;
};

/* One TLS connection: the user data of its tls_sess. */
struct tls_conn {
	struct tls_listener *l;
	struct tls_sess *s;
	stun_sockaddr peer;
	stun_sockaddr local;   /* the exact local address (RESPONSE-ORIGIN) */
	struct stream_rx rx;
};

/* --- the certificate context ----------------------------------------------- */

static bool tls_wanted(const struct config *c)
{
	return c->cert && c->pkey && (!c->no_tls || !c->no_dtls);
}

int tls_shared_setup(struct stund_shared *sh, const struct config *cfg, char *err, size_t errlen)
{
	struct tls_shared *t;
	struct tls_ctx *ctx;
	int r;

	sh->tls = NULL;
	if (!tls_wanted(cfg))
		return 0;
	r = tls_ctx_load(&ctx, cfg->cert, cfg->pkey, err, errlen);
	if (r)
		return r;
	t = calloc(1, sizeof(*t));
	if (!t) {
		tls_ctx_unref(ctx);
		return -ENOMEM;
	}
	pthread_mutex_init(&t->mu, NULL);
	t->ctx = ctx;
	t->tls = !cfg->no_tls;
	t->dtls = !cfg->no_dtls;
	t->port = cfg->tls_listening_port;
	sh->tls = t;
	log_msg(LOG_INFO, "tls: %s%s%s on port %u, certificate %s (%s)", t->tls ? "tls" : "",
		t->tls && t->dtls ? "+" : "", t->dtls ? "dtls" : "", t->port, cfg->cert,
		tls_ctx_subject(ctx));
	return 0;
}

/* SIGHUP: load the certificate again (it may have been renewed in place). */
int tls_shared_reload(struct stund_shared *sh, const struct config *cfg, char *err, size_t errlen)
{
	struct tls_shared *t = sh->tls;
	struct tls_ctx *ctx, *old;
	int r;

	if (!t)
		return 0; /* TLS listeners only come with a restart */
	if (!cfg->cert || !cfg->pkey) {
		log_msg(LOG_WARN, "reload: no cert/pkey; TLS keeps the certificate it has");
		return 0;
	}
	r = tls_ctx_load(&ctx, cfg->cert, cfg->pkey, err, errlen);
	if (r)
		return r;
	pthread_mutex_lock(&t->mu);
	old = t->ctx;
	t->ctx = ctx;
	__atomic_store_n(&t->generation, t->generation + 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&t->mu);
	tls_ctx_unref(old);
	log_msg(LOG_INFO, "tls: certificate reloaded from %s (%s)", cfg->cert, tls_ctx_subject(ctx));
	return 0;
}

int tls_config_check(const struct config *cfg, char *err, size_t errlen)
{
	struct tls_ctx *ctx;
	int r;

	if (!tls_wanted(cfg))
		return 0;
	r = tls_ctx_load(&ctx, cfg->cert, cfg->pkey, err, errlen);
	if (!r)
		tls_ctx_unref(ctx);
	return r;
}

void tls_shared_teardown(struct stund_shared *sh)
{
	struct tls_shared *t = sh->tls;

	if (!t)
		return;
	tls_ctx_unref(t->ctx);
	pthread_mutex_destroy(&t->mu);
	free(t);
	sh->tls = NULL;
}

struct tls_ctx *tls_shared_ctx(struct stund_shared *sh, unsigned *generation)
{
	struct tls_shared *t = sh->tls;
	struct tls_ctx *ctx;

	pthread_mutex_lock(&t->mu);
	ctx = tls_ctx_ref(t->ctx);
	*generation = __atomic_load_n(&t->generation, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&t->mu);
	return ctx;
}

/* --- what TLS and DTLS sessions share --------------------------------------- */

static struct worker *sess_worker(struct tls_sess *s)
{
	struct tls_listener *l = tls_pool_arg(tls_sess_pool(s));

	return l->tw->w;
}

/* The process-wide cap on connections (max-connections) covers TCP, TLS
 * and DTLS alike. */
static bool sess_admit(struct tls_pool *p, const struct sockaddr *peer, socklen_t len)
{
	struct tls_listener *l = tls_pool_arg(p);
	struct worker *w = l->tw->w;

	(void)len;
	if (__atomic_add_fetch(&w->shared->conns, 1, __ATOMIC_RELAXED) > w->cfg->max_connections) {
		__atomic_sub_fetch(&w->shared->conns, 1, __ATOMIC_RELAXED);
		metrics_drop(&w->metrics, DROP_CONN_LIMIT);
		log_peer(LOG_WARN, peer, "%s: refused (max-connections %u reached)",
			 transport_name(l->tp), w->cfg->max_connections);
		return false;
	}
	METRIC_INC(w->metrics.conns_total);
	METRIC_ADD(w->metrics.conns_active, 1);
	return true;
}

/* How the TURN relay sends to a client on a session (struct turn_link). */
static int turn_sess_send(void *s, const uint8_t *buf, size_t len)
{
	return tls_sess_send(s, buf, len);
}

/* A session ends: so does a TURN allocation made over it. */
static void turn_sess_closed(struct worker *w, struct tls_listener *l, struct tls_sess *s)
{
	stun_sockaddr peer;
	socklen_t pl = 0;
	const struct sockaddr *sa = tls_sess_peer(s, &pl);
	struct stun_in in = { .peer = &peer, .laddr = l->laddr, .tp = l->tp, .sess = s,
			      .sess_send = turn_sess_send };

	if (!sa || pl > sizeof(peer))
		return;
	memset(&peer, 0, sizeof(peer));
	memcpy(&peer, sa, pl);
	turn_dispatch_sess_closed(w, &in);
}

static void sess_closed(struct tls_sess *s, enum tls_close_reason why)
{
	struct tls_listener *l = tls_pool_arg(tls_sess_pool(s));
	struct worker *w = l->tw->w;
	struct tls_conn *c = tls_sess_user(s);
	socklen_t pl;

	rdv_service_sess_closed(w, s);
	turn_sess_closed(w, l, s);
	__atomic_sub_fetch(&w->shared->conns, 1, __ATOMIC_RELAXED);
	METRIC_ADD(w->metrics.conns_active, -1);
	if (why == TLS_CLOSE_IDLE)
		metrics_drop(&w->metrics, DROP_IDLE_TIMEOUT);
	else if (why == TLS_CLOSE_OVERFLOW)
		metrics_drop(&w->metrics, DROP_OVERFLOW);
	log_peer(why == TLS_CLOSE_HANDSHAKE_FAILED ? LOG_INFO : LOG_DEBUG, tls_sess_peer(s, &pl),
		 "%s: closed (%s)", transport_name(l->tp), tls_close_reason_name(why));
	if (c) {
		stream_rx_free(&c->rx);
		free(c);
	}
}

/* One whole message from the peer: STUN through dispatch, the answer back
 * on the same session. Returns 0, or -1 when the session is closing. */
static int reply(struct tls_sess *s, struct tls_listener *l, const stun_sockaddr *peer,
		 const stun_sockaddr *local, const uint8_t *frame, size_t len)
{
	struct worker *w = l->tw->w;
	uint8_t resp[UDP_BUF];
	struct stun_in in = { .buf = frame, .len = len, .peer = peer, .laddr = l->laddr,
			      .tp = l->tp, .local = local };
	struct stun_out out = { .buf = resp, .cap = sizeof(resp) };

	METRIC_INC(w->metrics.rx_packets);
	METRIC_ADD(w->metrics.rx_bytes, len);
	in.sess = s; /* the rendezvous and the TURN relay write on it later */
	in.sess_send = turn_sess_send;
	switch (stun_demux(frame, len)) {
	case STUN_DEMUX_STUN:
		break;
	case STUN_DEMUX_CHANNEL:
		turn_dispatch_channel_data(w, &in);
		return 0;
	default:
		if (turn_dispatch_legacy_channel(w, &in))
			return 0;
		metrics_drop(&w->metrics, DROP_NOT_STUN);
		return 0;
	}
	dispatch_stun(w, &in, &out);
	if (!out.len)
		return 0;
	if (tls_sess_send(s, resp, out.len)) {
		metrics_drop(&w->metrics, DROP_SEND_ERROR);
		return -1;
	}
	METRIC_INC(w->metrics.tx_packets);
	METRIC_ADD(w->metrics.tx_bytes, out.len);
	return 0;
}

/* DTLS: a wildcard socket does not know which address a datagram reached;
 * then no RESPONSE-ORIGIN rather than a wrong one. */
void tls_reply(struct tls_sess *s, struct tls_listener *l, const stun_sockaddr *peer,
	       const uint8_t *frame, size_t len)
{
	bool wild = l->tw->w->shared->laddrs.a[l->laddr].wildcard;

	reply(s, l, peer, wild ? NULL : &l->addr, frame, len);
}

static const struct tls_pool_ops tls_ops;
static const struct tls_pool_ops dtls_ops = {
	.on_data = dtls_on_data,
	.on_close = sess_closed,
	.admit = sess_admit,
};

int tls_listener_pool(struct tls_listener *l)
{
	const struct tls_pool_ops *ops = l->tp == TP_DTLS ? &dtls_ops : &tls_ops;
	struct worker *w = l->tw->w;
	struct tls_pool_cfg cfg = {
		.kind = l->tp == TP_DTLS ? TLS_KIND_DGRAM : TLS_KIND_STREAM,
		.max_sessions = w->cfg->max_connections,
		.idle_timeout = w->cfg->idle_timeout,
		.handshake_timeout = TLS_HANDSHAKE_TIMEOUT,
		.ops = ops,
		.arg = l,
	};
	struct tls_ctx *ctx = tls_shared_ctx(w->shared, &l->tw->generation);
	int r = tls_pool_new(&l->pool, w->loop, ctx, l->tp == TP_DTLS ? l->fd : -1, &cfg);

	tls_ctx_unref(ctx);
	return r;
}

void tls_listener_close(struct tls_listener *l)
{
	if (l->fd < 0)
		return;
	if (l->tw->w->loop)
		ev_io_stop(l->tw->w->loop, &l->io);
	tls_pool_free(l->pool); /* close_notify to every session first */
	l->pool = NULL;
	close(l->fd);
	l->fd = -1;
}

/* --- TLS: the stream ----------------------------------------------------------- */

static int on_frame(void *arg, const uint8_t *frame, size_t len)
{
	struct tls_conn *c = arg;

	return reply(c->s, c->l, &c->peer, &c->local, frame, len) ? 1 : 0;
}

static void tls_on_data(struct tls_sess *s, const uint8_t *buf, size_t len)
{
	struct tls_conn *c = tls_sess_user(s);
	int r;

	if (!c)
		return;
	r = stream_rx_feed(&c->rx, buf, len, on_frame, c);
	if (r >= 0)
		return;
	metrics_drop(&sess_worker(s)->metrics, DROP_BAD_FRAME);
	log_peer(LOG_INFO, &c->peer.sa, "tls: closing (bytes that are not a STUN frame)");
	tls_sess_close(s);
}

static const struct tls_pool_ops tls_ops = {
	.on_data = tls_on_data,
	.on_close = sess_closed,
	.admit = sess_admit,
};

static void tls_accept_one(struct tls_listener *l, int fd, const stun_sockaddr *peer,
			   socklen_t plen)
{
	struct tls_sess *s;
	struct tls_conn *c;
	stun_sockaddr local = l->addr;
	socklen_t ll = sizeof(local);
	int one = 1;

	getsockname(fd, &local.sa, &ll); /* exact even on a wildcard socket */
	/* mbedTLS writes each handshake message as its own record: without
	 * NODELAY, Nagle holds the second one for the peer's delayed ACK. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (tls_pool_accept(l->pool, fd, &peer->sa, plen, &s)) {
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		tls_sess_close(s);
		return;
	}
	c->l = l;
	c->s = s;
	c->peer = *peer;
	c->local = local;
	c->rx.rfc5766_channels = l->tw->w->cfg->rfc5766_channels;
	tls_sess_set_user(s, c);
}

static void tls_acceptable(struct ev_loop *loop, ev_io *io, int revents)
{
	struct tls_listener *l = io->data;
	stun_sockaddr peer;
	socklen_t plen;
	int fd;

	(void)loop;
	(void)revents;
	tls_worker_sync(l->tw);
	for (int i = 0; i < 32; i++) {
		plen = sizeof(peer);
		fd = accept4(l->fd, &peer.sa, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		tls_accept_one(l, fd, &peer, plen);
	}
}

static int tls_listener_start(struct tls_listener *l)
{
	int r = tls_listener_pool(l);

	if (r)
		return r;
	ev_io_init(&l->io, tls_acceptable, l->fd, EV_READ);
	l->io.data = l;
	ev_io_start(l->tw->w->loop, &l->io);
	return 0;
}

/* --- per worker -------------------------------------------------------------- */

/* The laddr of the first listening address with ip's address, or -1. */
static int first_of_ip(const struct laddr_set *s, int upto, const stun_sockaddr *ip)
{
	for (int i = 0; i < upto; i++) {
		stun_sockaddr a = s->a[i].addr, b = *ip;

		if (a.sa.sa_family == AF_INET)
			a.in4.sin_port = b.in4.sin_port = 0;
		else
			a.in6.sin6_port = b.in6.sin6_port = 0;
		if (stun_sockaddr_equal(&a, &b))
			return i;
	}
	return -1;
}

static int open_one(struct tls_listener *l, struct tls_worker *tw, enum transport tp,
		    int laddr, const stun_sockaddr *addr, char *err, size_t errlen)
{
	l->tw = tw;
	l->tp = tp;
	l->laddr = laddr;
	l->addr = *addr;
	l->fd = worker_socket(tp == TP_TLS ? SOCK_STREAM : SOCK_DGRAM, addr, err, errlen);
	if (l->fd < 0) {
		size_t n = strlen(err);

		snprintf(err + n, errlen - n, " (%s)", transport_name(tp));
		return l->fd;
	}
	return 0;
}

static int open_ip(struct tls_worker *tw, int laddr, char *err, size_t errlen)
{
	struct tls_shared *t = tw->w->shared->tls;
	stun_sockaddr addr = tw->w->shared->laddrs.a[laddr].addr;
	int r = 0;

	if (addr.sa.sa_family == AF_INET)
		addr.in4.sin_port = htons(t->port);
	else
		addr.in6.sin6_port = htons(t->port);
	if (t->tls)
		r = open_one(&tw->tls[tw->n], tw, TP_TLS, laddr, &addr, err, errlen);
	if (!r && t->dtls)
		r = open_one(&tw->dtls[tw->n], tw, TP_DTLS, laddr, &addr, err, errlen);
	tw->n++;
	return r;
}

int tls_worker_open(struct worker *w, char *err, size_t errlen)
{
	const struct laddr_set *s = &w->shared->laddrs;
	struct tls_worker *tw;
	int r;

	if (!w->shared->tls)
		return 0;
	tw = calloc(1, sizeof(*tw));
	if (!tw)
		return -ENOMEM;
	tw->w = w;
	for (size_t i = 0; i < CFG_MAX_LISTEN * 2; i++)
		tw->tls[i].fd = tw->dtls[i].fd = -1;
	w->tls = tw;
	for (int i = 0; i < s->n; i++) {
		if (first_of_ip(s, i, &s->a[i].addr) >= 0)
			continue; /* one TLS/DTLS socket per IP */
		r = open_ip(tw, i, err, errlen);
		if (r)
			return r;
	}
	return 0;
}

int tls_worker_start(struct worker *w)
{
	struct tls_worker *tw = w->tls;
	int r = 0;

	if (!tw)
		return 0;
	tw->batch = dtls_batch_new();
	if (!tw->batch)
		return -ENOMEM;
	for (int i = 0; i < tw->n && !r; i++) {
		if (tw->tls[i].fd >= 0)
			r = tls_listener_start(&tw->tls[i]);
		if (!r && tw->dtls[i].fd >= 0)
			r = dtls_listener_start(&tw->dtls[i]);
	}
	return r;
}

/* Use the newest certificate context for new sessions. Called before
 * every accept / datagram batch, so a connection made after the reload's
 * log line sees the new certificate whichever worker takes it. */
void tls_worker_sync(struct tls_worker *tw)
{
	struct tls_shared *t = tw->w->shared->tls;
	struct tls_ctx *ctx;
	unsigned gen;

	if (__atomic_load_n(&t->generation, __ATOMIC_ACQUIRE) == tw->generation)
		return;
	ctx = tls_shared_ctx(tw->w->shared, &gen);
	for (int i = 0; i < tw->n; i++) {
		if (tw->tls[i].pool)
			tls_pool_set_ctx(tw->tls[i].pool, ctx);
		if (tw->dtls[i].pool)
			tls_pool_set_ctx(tw->dtls[i].pool, ctx);
	}
	tw->generation = gen;
	tls_ctx_unref(ctx);
}

/* A new configuration is in use: new timeouts, maybe a new certificate. */
void tls_worker_reload(struct worker *w)
{
	struct tls_worker *tw = w->tls;

	if (!tw)
		return;
	tls_worker_sync(tw);
	for (int i = 0; i < tw->n; i++) {
		if (tw->tls[i].pool)
			tls_pool_set_timeouts(tw->tls[i].pool, w->cfg->idle_timeout,
					      TLS_HANDSHAKE_TIMEOUT);
		if (tw->dtls[i].pool)
			tls_pool_set_timeouts(tw->dtls[i].pool, w->cfg->idle_timeout,
					      TLS_HANDSHAKE_TIMEOUT);
	}
}

/* SIGTERM: stop listening, close_notify to every session. */
void tls_worker_drain(struct worker *w)
{
	struct tls_worker *tw = w->tls;

	if (!tw)
		return;
	for (int i = 0; i < tw->n; i++) {
		tls_listener_close(&tw->tls[i]);
		tls_listener_close(&tw->dtls[i]);
	}
}

void tls_worker_free(struct worker *w)
{
	struct tls_worker *tw = w->tls;

	if (!tw)
		return;
	tls_worker_drain(w);
	dtls_batch_free(tw->batch);
	free(tw);
	w->tls = NULL;
}

/* --- metrics ----------------------------------------------------------------- */

struct tls_sums {
	uint64_t handshakes, failures, hs_timeouts, idle_timeouts, refused, hvr, dropped;
	uint64_t active;
};

static uint64_t ld(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void sum_pool(struct tls_sums *s, const struct tls_pool *p)
{
	const struct tls_pool_stats *st;

	if (!p)
		return;
	st = tls_pool_stats(p);
	s->handshakes += ld(&st->handshakes);
	s->failures += ld(&st->handshake_failures);
	s->hs_timeouts += ld(&st->handshake_timeouts);
	s->idle_timeouts += ld(&st->idle_timeouts);
	s->refused += ld(&st->refused_cap);
	s->hvr += ld(&st->hello_verify_sent);
	s->dropped += ld(&st->dgram_dropped);
	s->active += __atomic_load_n(&st->active, __ATOMIC_RELAXED);
}

static void put_family(char *buf, size_t cap, size_t *n, const char *name, const char *type,
		       const char *help, const uint64_t v[2])
{
	*n = metrics_appendf(buf, cap, *n, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
	*n = metrics_appendf(buf, cap, *n, "%s{transport=\"tls\"} %llu\n", name, (unsigned long long)v[0]);
	*n = metrics_appendf(buf, cap, *n, "%s{transport=\"dtls\"} %llu\n", name, (unsigned long long)v[1]);
}

size_t tls_metrics_write(struct worker *const *w, int nw, char *buf, size_t cap)
{
	struct tls_sums s[2];
	size_t n = 0;
	bool any = false;

	memset(s, 0, sizeof(s));
	for (int k = 0; k < nw; k++) {
		struct tls_worker *tw = w[k]->tls;

		for (int i = 0; tw && i < tw->n; i++) {
			sum_pool(&s[0], tw->tls[i].pool);
			sum_pool(&s[1], tw->dtls[i].pool);
			any = true;
		}
	}
	if (!any)
		return 0;
#define PAIR(f) ((const uint64_t[2]){ s[0].f, s[1].f })
	put_family(buf, cap, &n, "stund_tls_sessions", "gauge",
		   "Open TLS connections and DTLS associations, handshaking ones included.",
		   PAIR(active));
	put_family(buf, cap, &n, "stund_tls_handshakes_total", "counter",
		   "Completed TLS/DTLS handshakes.", PAIR(handshakes));
	put_family(buf, cap, &n, "stund_tls_handshake_failures_total", "counter",
		   "TLS/DTLS handshakes that failed (alert, protocol error).", PAIR(failures));
	put_family(buf, cap, &n, "stund_tls_handshake_timeouts_total", "counter",
		   "TLS/DTLS handshakes not completed in time.", PAIR(hs_timeouts));
	put_family(buf, cap, &n, "stund_tls_idle_timeouts_total", "counter",
		   "TLS/DTLS sessions closed for idleness.", PAIR(idle_timeouts));
	put_family(buf, cap, &n, "stund_tls_refused_total", "counter",
		   "TLS connections / DTLS associations refused at the connection cap.",
		   PAIR(refused));
	n = metrics_appendf(buf, cap, n, "# HELP stund_dtls_hello_verify_requests_total DTLS HelloVerifyRequests "
	    "sent (RFC 6347 s4.2.1 cookies).\n# TYPE stund_dtls_hello_verify_requests_total counter\n"
	    "stund_dtls_hello_verify_requests_total %llu\n", (unsigned long long)s[1].hvr);
	n = metrics_appendf(buf, cap, n, "# HELP stund_dtls_dropped_datagrams_total Datagrams on the DTLS port "
	    "that no session or handshake took.\n# TYPE stund_dtls_dropped_datagrams_total counter\n"
	    "stund_dtls_dropped_datagrams_total %llu\n", (unsigned long long)s[1].dropped);
#undef PAIR
	return n;
}
