/* tls: mbedTLS TLS/DTLS server sessions on a libev loop. See tls.h. */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <netinet/in.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_cookie.h>
#include <mbedtls/x509_crt.h>

#define TLS_DEFAULT_PENDING (256u * 1024u)
#define TLS_DEFAULT_MTU 1400
#define TLS_READ_CHUNK 16384
/* DTLS retransmission: first after 1 s, doubling up to 8 s (RFC 6347
 * s4.2.4.1 recommends 1 s initial; the pool's handshake_timeout caps the
 * whole handshake anyway). */
#define DTLS_HS_TIMEOUT_MIN_MS 1000
#define DTLS_HS_TIMEOUT_MAX_MS 8000
#define TLS_CONTENT_HANDSHAKE 22 /* RFC 5246 s6.2.1 ContentType */
#define DTLS_RECORD_HDR_LEN 13   /* RFC 6347 s4.1 */

/* Counters have one writer (the pool's loop) and may be read from another
 * thread (the metrics endpoint): relaxed atomic load + store. */
#define STAT_ADD(field, n) \
	__atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)

struct tls_ctx {
	atomic_int refs;
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_x509_crt crt;
	mbedtls_pk_context pk;
	mbedtls_ssl_cookie_ctx cookie;
	mbedtls_ssl_config tls_conf;
	mbedtls_ssl_config dtls_conf;
	char subject[256];
};

/* A peer address normalised so that equal endpoints compare equal bytewise. */
struct tls_peer {
	socklen_t len;
	struct sockaddr_storage ss;
};

struct tls_sess {
	struct tls_pool *pool;       /* borrowed: the owner */
	struct tls_ctx *ctx;         /* owned reference: the config ssl uses */
	mbedtls_ssl_context ssl;
	struct tls_sess *prev, *next; /* the pool's list of sessions */
	struct tls_sess *hnext;      /* DTLS: the pool's peer hash chain */
	struct tls_peer peer;
	int fd;                      /* TLS: owned TCP socket; DTLS: borrowed UDP */
	ev_io io;                    /* TLS only */
	ev_timer hs_timer;           /* handshake deadline */
	ev_timer idle_timer;
	ev_timer dtls_timer;         /* mbedTLS retransmission timer */
	ev_timer end_timer;          /* runs on_close + free on a later iteration */
	ev_tstamp dtls_int_at, dtls_fin_at; /* 0: timer cancelled */
	ev_tstamp last_active;
	const uint8_t *rx;           /* DTLS: the datagram being fed */
	size_t rx_len;
	uint8_t *out;                /* TLS: plaintext waiting for the socket */
	size_t out_head, out_len, out_cap;
	void *user;
	enum tls_close_reason why;
	bool dgram, established, ending, in_pool;
};

struct tls_pool {
	struct ev_loop *loop;
	struct tls_ctx *ctx;         /* owned reference: for new sessions */
	struct tls_pool_cfg cfg;
	int fd;                      /* DTLS: borrowed UDP socket */
	struct tls_sess *head;       /* every live session */
	struct tls_sess **buckets;   /* DTLS: peer -> session */
	size_t nbuckets;
	struct tls_sess *gate;       /* DTLS: answers ClientHellos, see pool_hello */
	struct tls_pool_stats stats;
};

/* ---- errors ---------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *what, const char *path, int ret)
{
	char reason[160];

	if (!err || !errlen)
		return;
	mbedtls_strerror(ret, reason, sizeof(reason));
	snprintf(err, errlen, "%s %s: %s", what, path, reason);
}

static int check_readable(const char *what, const char *path, char *err, size_t errlen)
{
	struct stat sb;
	FILE *f = fopen(path, "rb");
	int e = errno;

	if (f) {
		e = fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode) ? EISDIR : 0;
		fclose(f);
		if (!e)
			return 0;
	}
	if (err && errlen)
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(e));
	return -e;
}

const char *tls_close_reason_name(enum tls_close_reason why)
{
	switch (why) {
	case TLS_CLOSE_PEER: return "peer closed";
	case TLS_CLOSE_LOCAL: return "closed";
	case TLS_CLOSE_IDLE: return "idle timeout";
	case TLS_CLOSE_HANDSHAKE_TIMEOUT: return "handshake timeout";
	case TLS_CLOSE_HANDSHAKE_FAILED: return "handshake failed";
	case TLS_CLOSE_ERROR: return "error";
	case TLS_CLOSE_OVERFLOW: return "send queue overflow";
	}
	return "?";
}

/* ---- tls_ctx ----------------------------------------------------------- */

static void ctx_free(struct tls_ctx *c)
{
	mbedtls_ssl_config_free(&c->dtls_conf);
	mbedtls_ssl_config_free(&c->tls_conf);
	mbedtls_ssl_cookie_free(&c->cookie);
	mbedtls_pk_free(&c->pk);
	mbedtls_x509_crt_free(&c->crt);
	mbedtls_ctr_drbg_free(&c->drbg);
	mbedtls_entropy_free(&c->entropy);
	free(c);
}

static int ctx_conf(struct tls_ctx *c, mbedtls_ssl_config *conf, int transport)
{
	int ret = mbedtls_ssl_config_defaults(conf, MBEDTLS_SSL_IS_SERVER, transport,
					      MBEDTLS_SSL_PRESET_DEFAULT);

	if (ret)
		return ret;
	/* TLS 1.2 / DTLS 1.2 at least (RFC 8489 s6.2.2 points to RFC 7525). */
	mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3,
				     MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_rng(conf, mbedtls_ctr_drbg_random, &c->drbg);
	mbedtls_ssl_conf_authmode(conf, MBEDTLS_SSL_VERIFY_NONE);
	if (transport == MBEDTLS_SSL_TRANSPORT_DATAGRAM) {
		mbedtls_ssl_conf_dtls_cookies(conf, mbedtls_ssl_cookie_write,
					      mbedtls_ssl_cookie_check, &c->cookie);
		mbedtls_ssl_conf_handshake_timeout(conf, DTLS_HS_TIMEOUT_MIN_MS,
						   DTLS_HS_TIMEOUT_MAX_MS);
	}
	return mbedtls_ssl_conf_own_cert(conf, &c->crt, &c->pk);
}

static int ctx_parse(struct tls_ctx *c, const char *cert, const char *key,
		     char *err, size_t errlen)
{
	int ret = mbedtls_x509_crt_parse_file(&c->crt, cert);

	if (ret < 0) {
		set_err(err, errlen, "cert", cert, ret);
		return -EINVAL;
	}
	if (ret > 0) {
		snprintf(err, errlen, "cert %s: %d certificate(s) in the chain could not be parsed",
			 cert, ret);
		return -EINVAL;
	}
	ret = mbedtls_pk_parse_keyfile(&c->pk, key, NULL);
	if (ret) {
		set_err(err, errlen, "pkey", key, ret);
		return -EINVAL;
	}
	ret = mbedtls_pk_check_pair(&c->crt.pk, &c->pk);
	if (ret) {
		snprintf(err, errlen, "pkey %s does not match the certificate in cert %s", key, cert);
		return -EINVAL;
	}
	mbedtls_x509_dn_gets(c->subject, sizeof(c->subject), &c->crt.subject);
	return 0;
}

static int ctx_setup(struct tls_ctx *c, char *err, size_t errlen)
{
	static const unsigned char pers[] = "natkit stund tls";
	int ret;

	ret = mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->entropy,
				    pers, sizeof(pers) - 1);
	if (!ret)
		ret = mbedtls_ssl_cookie_setup(&c->cookie, mbedtls_ctr_drbg_random, &c->drbg);
	if (!ret)
		ret = ctx_conf(c, &c->tls_conf, MBEDTLS_SSL_TRANSPORT_STREAM);
	if (!ret)
		ret = ctx_conf(c, &c->dtls_conf, MBEDTLS_SSL_TRANSPORT_DATAGRAM);
	if (ret) {
		set_err(err, errlen, "tls", "setup", ret);
		return -EIO;
	}
	return 0;
}

int tls_ctx_load(struct tls_ctx **out, const char *cert_path, const char *key_path,
		 char *err, size_t errlen)
{
	struct tls_ctx *c;
	int ret;

	if (!cert_path || !*cert_path || !key_path || !*key_path) {
		snprintf(err, errlen, "TLS needs both cert and pkey");
		return -EINVAL;
	}
	ret = check_readable("cert", cert_path, err, errlen);
	if (!ret)
		ret = check_readable("pkey", key_path, err, errlen);
	if (ret)
		return ret;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	atomic_init(&c->refs, 1);
	mbedtls_entropy_init(&c->entropy);
	mbedtls_ctr_drbg_init(&c->drbg);
	mbedtls_x509_crt_init(&c->crt);
	mbedtls_pk_init(&c->pk);
	mbedtls_ssl_cookie_init(&c->cookie);
	mbedtls_ssl_config_init(&c->tls_conf);
	mbedtls_ssl_config_init(&c->dtls_conf);
	ret = ctx_parse(c, cert_path, key_path, err, errlen);
	if (!ret)
		ret = ctx_setup(c, err, errlen);
	if (ret) {
		ctx_free(c);
		return ret;
	}
	*out = c;
	return 0;
}

struct tls_ctx *tls_ctx_ref(struct tls_ctx *c)
{
	atomic_fetch_add(&c->refs, 1);
	return c;
}

void tls_ctx_unref(struct tls_ctx *c)
{
	if (c && atomic_fetch_sub(&c->refs, 1) == 1)
		ctx_free(c);
}

const char *tls_ctx_subject(const struct tls_ctx *c)
{
	return c->subject;
}

/* ---- peers and the DTLS peer table --------------------------------------- */

static void peer_set(struct tls_peer *p, const struct sockaddr *sa, socklen_t len)
{
	memset(p, 0, sizeof(*p));
	if (len > sizeof(p->ss))
		len = sizeof(p->ss);
	if (sa && sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		struct sockaddr_in *o = (struct sockaddr_in *)&p->ss;

		o->sin_family = AF_INET;
		o->sin_port = in->sin_port;
		o->sin_addr = in->sin_addr;
		p->len = sizeof(*o);
	} else if (sa && sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		struct sockaddr_in6 *o = (struct sockaddr_in6 *)&p->ss;

		o->sin6_family = AF_INET6;
		o->sin6_port = in6->sin6_port;
		o->sin6_addr = in6->sin6_addr;
		o->sin6_scope_id = in6->sin6_scope_id;
		p->len = sizeof(*o);
	} else if (sa && len > sizeof(sa_family_t)) {
		memcpy(&p->ss, sa, len); /* AF_UNIX and others: as given */
		p->len = len;
	} else { /* unnamed: one peer per socket (a connected socketpair) */
		p->ss.ss_family = sa && len ? sa->sa_family : AF_UNSPEC;
		p->len = sizeof(sa_family_t);
	}
}

static bool peer_equal(const struct tls_peer *a, const struct tls_peer *b)
{
	return a->len == b->len && !memcmp(&a->ss, &b->ss, a->len);
}

static size_t peer_hash(const struct tls_peer *p)
{
	const uint8_t *b = (const uint8_t *)&p->ss;
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (socklen_t i = 0; i < p->len; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return (size_t)h;
}

static struct tls_sess **table_slot(struct tls_pool *p, const struct tls_peer *peer)
{
	struct tls_sess **pp = &p->buckets[peer_hash(peer) & (p->nbuckets - 1)];

	while (*pp && !peer_equal(&(*pp)->peer, peer))
		pp = &(*pp)->hnext;
	return pp;
}

static void table_remove(struct tls_pool *p, struct tls_sess *s)
{
	struct tls_sess **pp = table_slot(p, &s->peer);

	if (*pp == s)
		*pp = s->hnext;
	s->hnext = NULL;
}

/* ---- sessions: lifecycle ------------------------------------------------- */

static void sess_stop_watchers(struct tls_sess *s)
{
	struct ev_loop *loop = s->pool->loop;

	if (!s->dgram)
		ev_io_stop(loop, &s->io);
	ev_timer_stop(loop, &s->hs_timer);
	ev_timer_stop(loop, &s->idle_timer);
	ev_timer_stop(loop, &s->dtls_timer);
	ev_timer_stop(loop, &s->end_timer);
}

static void sess_free(struct tls_sess *s)
{
	struct tls_pool *p = s->pool;

	sess_stop_watchers(s);
	if (s->in_pool) {
		if (s->prev)
			s->prev->next = s->next;
		else
			p->head = s->next;
		if (s->next)
			s->next->prev = s->prev;
		STAT_ADD(p->stats.active, -1);
	}
	if (!s->dgram && s->fd >= 0)
		close(s->fd);
	mbedtls_ssl_free(&s->ssl);
	tls_ctx_unref(s->ctx);
	free(s->out);
	free(s);
}

static void sess_end_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct tls_sess *s = w->data;
	const struct tls_pool_ops *ops = s->pool->cfg.ops;

	(void)loop;
	(void)revents;
	if (ops->on_close)
		ops->on_close(s, s->why);
	sess_free(s);
}

/* Mark the session ended: no more I/O; on_close and free run on the next
 * loop iteration so no caller up the stack holds a freed pointer. */
static void sess_end(struct tls_sess *s, enum tls_close_reason why)
{
	if (s->ending)
		return;
	s->ending = true;
	s->why = why;
	if (s->dgram && s->in_pool)
		table_remove(s->pool, s);
	sess_stop_watchers(s);
	ev_timer_set(&s->end_timer, 0., 0.);
	ev_timer_start(s->pool->loop, &s->end_timer);
}

static void sess_fail(struct tls_sess *s, int ret)
{
	struct tls_pool_stats *st = &s->pool->stats;

	if (ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || ret == MBEDTLS_ERR_SSL_CONN_EOF ||
	    ret == MBEDTLS_ERR_SSL_CLIENT_RECONNECT || ret == 0) {
		sess_end(s, TLS_CLOSE_PEER);
		return;
	}
	if (s->established) {
		sess_end(s, TLS_CLOSE_ERROR);
		return;
	}
	if (ret == MBEDTLS_ERR_SSL_TIMEOUT) {
		STAT_ADD(st->handshake_timeouts, 1);
		sess_end(s, TLS_CLOSE_HANDSHAKE_TIMEOUT);
		return;
	}
	STAT_ADD(st->handshake_failures, 1);
	sess_end(s, TLS_CLOSE_HANDSHAKE_FAILED);
}

/* ---- BIO callbacks ------------------------------------------------------- */

static int bio_stream_send(void *ctx, const unsigned char *buf, size_t len)
{
	struct tls_sess *s = ctx;
	ssize_t n = send(s->fd, buf, len, MSG_NOSIGNAL);

	if (n >= 0)
		return (int)n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	return MBEDTLS_ERR_NET_SEND_FAILED;
}

static int bio_stream_recv(void *ctx, unsigned char *buf, size_t len)
{
	struct tls_sess *s = ctx;
	ssize_t n = recv(s->fd, buf, len, 0);

	if (n >= 0)
		return (int)n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return MBEDTLS_ERR_SSL_WANT_READ;
	return MBEDTLS_ERR_NET_RECV_FAILED;
}

/* DTLS: a datagram that cannot be sent now is lost like any UDP datagram;
 * handshake flights are retransmitted by the timer. */
static int bio_dgram_send(void *ctx, const unsigned char *buf, size_t len)
{
	struct tls_sess *s = ctx;
	const struct sockaddr *to = (const struct sockaddr *)&s->peer.ss;
	socklen_t tolen = s->peer.len;

	/* An unnamed AF_UNIX peer (a socketpair in tests) has no address. */
	if (tolen <= sizeof(sa_family_t)) {
		to = NULL;
		tolen = 0;
	}
	if (sendto(s->fd, buf, len, 0, to, tolen) < 0)
		STAT_ADD(s->pool->stats.send_dropped, 1);
	return (int)len;
}

static int bio_dgram_recv(void *ctx, unsigned char *buf, size_t len)
{
	struct tls_sess *s = ctx;
	const uint8_t *rx = s->rx;
	size_t n = s->rx_len;

	if (!rx)
		return MBEDTLS_ERR_SSL_WANT_READ;
	s->rx = NULL;
	s->rx_len = 0;
	if (n > len)
		return MBEDTLS_ERR_SSL_WANT_READ; /* larger than any record we take */
	memcpy(buf, rx, n);
	return (int)n;
}

/* mbedTLS's DTLS timer (ssl.h mbedtls_ssl_set_timer_t) on the loop clock. */
static void timer_set(void *ctx, uint32_t int_ms, uint32_t fin_ms)
{
	struct tls_sess *s = ctx;
	ev_tstamp now = ev_now(s->pool->loop);

	ev_timer_stop(s->pool->loop, &s->dtls_timer);
	if (!fin_ms) {
		s->dtls_int_at = s->dtls_fin_at = 0;
		return;
	}
	s->dtls_int_at = now + int_ms / 1000.;
	s->dtls_fin_at = now + fin_ms / 1000.;
	if (s->in_pool && !s->ending) {
		ev_timer_set(&s->dtls_timer, fin_ms / 1000., 0.);
		ev_timer_start(s->pool->loop, &s->dtls_timer);
	}
}

static int timer_get(void *ctx)
{
	struct tls_sess *s = ctx;
	ev_tstamp now = ev_now(s->pool->loop);

	if (!s->dtls_fin_at)
		return -1;
	if (now >= s->dtls_fin_at)
		return 2;
	return now >= s->dtls_int_at ? 1 : 0;
}

/* ---- sessions: I/O ------------------------------------------------------- */

static void io_set(struct tls_sess *s, int events)
{
	struct ev_loop *loop = s->pool->loop;

	if (s->dgram || s->ending || s->io.events == events)
		return;
	ev_io_stop(loop, &s->io);
	ev_io_set(&s->io, s->fd, events);
	ev_io_start(loop, &s->io);
}

static void sess_established(struct tls_sess *s)
{
	struct tls_pool *p = s->pool;

	s->established = true;
	STAT_ADD(p->stats.handshakes, 1);
	ev_timer_stop(p->loop, &s->hs_timer);
	s->last_active = ev_now(p->loop);
	ev_timer_set(&s->idle_timer, p->cfg.idle_timeout, 0.);
	ev_timer_start(p->loop, &s->idle_timer);
	if (p->cfg.ops->on_open)
		p->cfg.ops->on_open(s);
}

static void sess_handshake(struct tls_sess *s)
{
	int ret = mbedtls_ssl_handshake(&s->ssl);

	if (ret == MBEDTLS_ERR_SSL_WANT_READ) {
		io_set(s, EV_READ);
		return;
	}
	if (ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
		io_set(s, EV_READ | EV_WRITE);
		return;
	}
	if (ret) {
		sess_fail(s, ret);
		return;
	}
	sess_established(s);
}

static void sess_read(struct tls_sess *s)
{
	uint8_t buf[TLS_READ_CHUNK];
	int ret;

	while (!s->ending) {
		ret = mbedtls_ssl_read(&s->ssl, buf, sizeof(buf));
		if (ret > 0) {
			s->last_active = ev_now(s->pool->loop);
			s->pool->cfg.ops->on_data(s, buf, (size_t)ret);
			continue;
		}
		if (ret == MBEDTLS_ERR_SSL_WANT_READ)
			return;
		/* DTLS: the retransmission timer of our last flight ran out;
		 * mbedTLS has cancelled it and the association is fine. */
		if (ret == MBEDTLS_ERR_SSL_TIMEOUT && s->dgram)
			return;
		if (ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
			io_set(s, EV_READ | EV_WRITE);
			return;
		}
		if (ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
			mbedtls_ssl_close_notify(&s->ssl); /* answer it, best effort */
		sess_fail(s, ret);
	}
}

static void sess_flush(struct tls_sess *s)
{
	int ret;

	while (s->out_len && !s->ending) {
		size_t n = s->out_len < TLS_READ_CHUNK ? s->out_len : TLS_READ_CHUNK;

		ret = mbedtls_ssl_write(&s->ssl, s->out + s->out_head, n);
		if (ret == MBEDTLS_ERR_SSL_WANT_WRITE || ret == MBEDTLS_ERR_SSL_WANT_READ) {
			io_set(s, EV_READ | EV_WRITE);
			return;
		}
		if (ret < 0) {
			sess_fail(s, ret);
			return;
		}
		s->out_head += (size_t)ret;
		s->out_len -= (size_t)ret;
	}
	s->out_head = 0;
	io_set(s, EV_READ);
}

static void sess_drive(struct tls_sess *s)
{
	if (!s->established && !s->ending)
		sess_handshake(s);
	if (s->established && !s->ending)
		sess_read(s);
	if (!s->dgram && s->established && !s->ending)
		sess_flush(s);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	sess_drive(w->data);
}

static void dtls_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	sess_drive(w->data);
}

static void hs_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct tls_sess *s = w->data;

	(void)loop;
	(void)revents;
	if (s->established)
		return;
	STAT_ADD(s->pool->stats.handshake_timeouts, 1);
	sess_end(s, TLS_CLOSE_HANDSHAKE_TIMEOUT);
}

static void idle_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct tls_sess *s = w->data;
	ev_tstamp left = s->last_active + s->pool->cfg.idle_timeout - ev_now(loop);

	(void)revents;
	if (left > 0) {
		ev_timer_set(w, left, 0.);
		ev_timer_start(loop, w);
		return;
	}
	STAT_ADD(s->pool->stats.idle_timeouts, 1);
	mbedtls_ssl_close_notify(&s->ssl);
	sess_end(s, TLS_CLOSE_IDLE);
}

/* ---- sessions: creation ------------------------------------------------- */

static void sess_init_watchers(struct tls_sess *s)
{
	ev_init(&s->hs_timer, hs_timer_cb);
	ev_init(&s->idle_timer, idle_timer_cb);
	ev_init(&s->dtls_timer, dtls_timer_cb);
	ev_init(&s->end_timer, sess_end_cb);
	s->hs_timer.data = s->idle_timer.data = s->dtls_timer.data = s->end_timer.data = s;
	if (!s->dgram) {
		ev_io_init(&s->io, io_cb, s->fd, EV_READ);
		s->io.data = s;
	}
}

static struct tls_sess *sess_new(struct tls_pool *p, bool dgram, int fd,
				 const struct tls_peer *peer)
{
	struct tls_sess *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->pool = p;
	s->ctx = tls_ctx_ref(p->ctx);
	s->fd = fd;
	s->dgram = dgram;
	s->peer = *peer;
	mbedtls_ssl_init(&s->ssl);
	if (mbedtls_ssl_setup(&s->ssl, dgram ? &s->ctx->dtls_conf : &s->ctx->tls_conf)) {
		s->fd = -1; /* still the caller's */
		sess_free(s);
		return NULL;
	}
	if (dgram) {
		mbedtls_ssl_set_bio(&s->ssl, s, bio_dgram_send, bio_dgram_recv, NULL);
		mbedtls_ssl_set_timer_cb(&s->ssl, s, timer_set, timer_get);
		mbedtls_ssl_set_mtu(&s->ssl, p->cfg.mtu);
	} else {
		mbedtls_ssl_set_bio(&s->ssl, s, bio_stream_send, bio_stream_recv, NULL);
	}
	sess_init_watchers(s);
	return s;
}

/* Put a new session into the pool: list, peer table, deadlines. */
static void sess_adopt(struct tls_sess *s)
{
	struct tls_pool *p = s->pool;
	ev_tstamp now = ev_now(p->loop);

	s->next = p->head;
	if (p->head)
		p->head->prev = s;
	p->head = s;
	s->in_pool = true;
	STAT_ADD(p->stats.active, 1);
	s->last_active = now;
	ev_timer_set(&s->hs_timer, p->cfg.handshake_timeout, 0.);
	ev_timer_start(p->loop, &s->hs_timer);
	if (!s->dgram) {
		ev_io_start(p->loop, &s->io);
		return;
	}
	*table_slot(p, &s->peer) = s;
	if (s->dtls_fin_at) {
		ev_tstamp left = s->dtls_fin_at - now;

		ev_timer_set(&s->dtls_timer, left > 0 ? left : 0., 0.);
		ev_timer_start(p->loop, &s->dtls_timer);
	}
}

/* ---- sessions: API ------------------------------------------------------- */

static int out_reserve(struct tls_sess *s, size_t len)
{
	size_t need = s->out_head + s->out_len + len;
	size_t cap = s->out_cap ? s->out_cap : 4096;
	uint8_t *n;

	if (s->out_len + len > s->pool->cfg.max_pending)
		return -ENOBUFS;
	if (need <= s->out_cap)
		return 0;
	while (cap < need)
		cap *= 2;
	n = realloc(s->out, cap);
	if (!n)
		return -ENOMEM;
	s->out = n;
	s->out_cap = cap;
	return 0;
}

static int sess_send_stream(struct tls_sess *s, const uint8_t *buf, size_t len)
{
	int ret = out_reserve(s, len);

	if (ret) {
		STAT_ADD(s->pool->stats.overflows, 1);
		sess_end(s, TLS_CLOSE_OVERFLOW);
		return ret;
	}
	memcpy(s->out + s->out_head + s->out_len, buf, len);
	s->out_len += len;
	if (s->established)
		sess_flush(s);
	return s->ending ? -EPIPE : 0;
}

static int sess_send_dgram(struct tls_sess *s, const uint8_t *buf, size_t len)
{
	int ret;

	if (!s->established)
		return -ENOTCONN;
	if (len > tls_sess_max_dgram(s))
		return -EMSGSIZE;
	ret = mbedtls_ssl_write(&s->ssl, buf, len);
	if (ret < 0) {
		sess_fail(s, ret);
		return -EIO;
	}
	return 0;
}

int tls_sess_send(struct tls_sess *s, const uint8_t *buf, size_t len)
{
	if (s->ending)
		return -EPIPE;
	return s->dgram ? sess_send_dgram(s, buf, len) : sess_send_stream(s, buf, len);
}

void tls_sess_close(struct tls_sess *s)
{
	if (s->ending)
		return;
	if (s->established) {
		if (!s->dgram)
			sess_flush(s);
		mbedtls_ssl_close_notify(&s->ssl); /* RFC 5246 s7.2.1, best effort */
	}
	sess_end(s, TLS_CLOSE_LOCAL);
}

bool tls_sess_established(const struct tls_sess *s)
{
	return s->established;
}

size_t tls_sess_max_dgram(const struct tls_sess *s)
{
	int n = mbedtls_ssl_get_max_out_record_payload(&s->ssl);

	return n > 0 ? (size_t)n : 0;
}

const struct sockaddr *tls_sess_peer(const struct tls_sess *s, socklen_t *len)
{
	if (len)
		*len = s->peer.len;
	return (const struct sockaddr *)&s->peer.ss;
}

struct tls_pool *tls_sess_pool(const struct tls_sess *s)
{
	return s->pool;
}

void tls_sess_set_user(struct tls_sess *s, void *user)
{
	s->user = user;
}

void *tls_sess_user(const struct tls_sess *s)
{
	return s->user;
}

/* ---- pools -------------------------------------------------------------- */

int tls_pool_new(struct tls_pool **out, struct ev_loop *loop, struct tls_ctx *ctx,
		 int fd, const struct tls_pool_cfg *cfg)
{
	struct tls_pool *p;

	if (!ctx || !cfg || !cfg->ops || !cfg->ops->on_data || !cfg->max_sessions)
		return -EINVAL;
	if (cfg->kind == TLS_KIND_DGRAM && fd < 0)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->loop = loop;
	p->cfg = *cfg;
	if (!p->cfg.max_pending)
		p->cfg.max_pending = TLS_DEFAULT_PENDING;
	if (!p->cfg.mtu)
		p->cfg.mtu = TLS_DEFAULT_MTU;
	p->fd = fd;
	if (cfg->kind == TLS_KIND_DGRAM) {
		p->nbuckets = 16;
		while (p->nbuckets < 2 * (size_t)cfg->max_sessions && p->nbuckets < (1u << 20))
			p->nbuckets *= 2;
		p->buckets = calloc(p->nbuckets, sizeof(*p->buckets));
		if (!p->buckets) {
			free(p);
			return -ENOMEM;
		}
	}
	p->ctx = tls_ctx_ref(ctx);
	*out = p;
	return 0;
}

static void pool_drop_gate(struct tls_pool *p)
{
	if (p->gate)
		sess_free(p->gate);
	p->gate = NULL;
}

void tls_pool_free(struct tls_pool *p)
{
	const struct tls_pool_ops *ops;

	if (!p)
		return;
	ops = p->cfg.ops;
	while (p->head) {
		struct tls_sess *s = p->head;

		if (!s->ending) {
			tls_sess_close(s);
		}
		if (ops->on_close)
			ops->on_close(s, s->why);
		sess_free(s);
	}
	pool_drop_gate(p);
	free(p->buckets);
	tls_ctx_unref(p->ctx);
	free(p);
}

void tls_pool_set_ctx(struct tls_pool *p, struct tls_ctx *ctx)
{
	struct tls_ctx *old = p->ctx;

	p->ctx = tls_ctx_ref(ctx);
	tls_ctx_unref(old);
	pool_drop_gate(p); /* it was set up with the old config */
}

void tls_pool_set_timeouts(struct tls_pool *p, double idle_timeout, double handshake_timeout)
{
	p->cfg.idle_timeout = idle_timeout;
	p->cfg.handshake_timeout = handshake_timeout;
}

const struct tls_pool_stats *tls_pool_stats(const struct tls_pool *p)
{
	return &p->stats;
}

void *tls_pool_arg(const struct tls_pool *p)
{
	return p->cfg.arg;
}

static bool pool_admit(struct tls_pool *p, struct tls_sess *s)
{
	const struct tls_pool_ops *ops = p->cfg.ops;

	if (!ops->admit || ops->admit(p, (const struct sockaddr *)&s->peer.ss, s->peer.len))
		return true;
	STAT_ADD(p->stats.refused_cap, 1);
	return false;
}

int tls_pool_accept(struct tls_pool *p, int fd, const struct sockaddr *peer,
		    socklen_t peer_len, struct tls_sess **out)
{
	struct tls_peer key;
	struct tls_sess *s;
	int fl;

	if (p->cfg.kind != TLS_KIND_STREAM)
		return -EINVAL;
	if (p->stats.active >= p->cfg.max_sessions) {
		STAT_ADD(p->stats.refused_cap, 1);
		return -EBUSY;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	peer_set(&key, peer, peer_len);
	s = sess_new(p, false, fd, &key);
	if (!s)
		return -ENOMEM;
	if (!pool_admit(p, s)) {
		s->fd = -1; /* still the caller's */
		sess_free(s);
		return -EBUSY;
	}
	sess_adopt(s);
	if (out)
		*out = s;
	return 0;
}

/* The gate: one spare DTLS context that answers ClientHellos from peers
 * without a session. A ClientHello without a valid cookie gets a
 * HelloVerifyRequest and leaves no state behind (RFC 6347 s4.2.1); with a
 * valid cookie the gate has begun a real handshake and becomes that
 * peer's session. */
static struct tls_sess *gate_prepare(struct tls_pool *p, const struct tls_peer *peer)
{
	struct tls_sess *g = p->gate;

	if (g && mbedtls_ssl_session_reset(&g->ssl))
		pool_drop_gate(p);
	if (!p->gate)
		p->gate = sess_new(p, true, p->fd, peer);
	g = p->gate;
	if (!g)
		return NULL;
	g->peer = *peer;
	g->dtls_int_at = g->dtls_fin_at = 0;
	if (mbedtls_ssl_set_client_transport_id(&g->ssl, (const unsigned char *)&peer->ss,
						peer->len)) {
		pool_drop_gate(p);
		return NULL;
	}
	return g;
}

static int pool_hello(struct tls_pool *p, const struct tls_peer *peer,
		      const uint8_t *buf, size_t len)
{
	struct tls_sess *g;
	int ret;

	if (len < DTLS_RECORD_HDR_LEN || buf[0] != TLS_CONTENT_HANDSHAKE) {
		STAT_ADD(p->stats.dgram_dropped, 1);
		return -EPROTO;
	}
	if (p->stats.active >= p->cfg.max_sessions) {
		STAT_ADD(p->stats.refused_cap, 1);
		return -EBUSY;
	}
	g = gate_prepare(p, peer);
	if (!g)
		return -ENOMEM;
	g->rx = buf;
	g->rx_len = len;
	ret = mbedtls_ssl_handshake(&g->ssl);
	g->rx = NULL;
	if (ret == MBEDTLS_ERR_SSL_HELLO_VERIFY_REQUIRED) {
		STAT_ADD(p->stats.hello_verify_sent, 1);
		return 0;
	}
	if (ret && ret != MBEDTLS_ERR_SSL_WANT_READ && ret != MBEDTLS_ERR_SSL_WANT_WRITE) {
		STAT_ADD(p->stats.dgram_dropped, 1);
		return -EPROTO;
	}
	if (!pool_admit(p, g))
		return -EBUSY; /* the client's handshake will time out */
	p->gate = NULL; /* the cookie was good: promote */
	sess_adopt(g);
	if (!ret)
		sess_drive(g);
	return 0;
}

int tls_pool_dgram(struct tls_pool *p, const struct sockaddr *peer, socklen_t peer_len,
		   const uint8_t *buf, size_t len)
{
	struct tls_peer key;
	struct tls_sess *s;

	if (p->cfg.kind != TLS_KIND_DGRAM)
		return -EINVAL;
	peer_set(&key, peer, peer_len);
	s = *table_slot(p, &key);
	if (!s)
		return pool_hello(p, &key, buf, len);
	s->rx = buf;
	s->rx_len = len;
	sess_drive(s);
	if (s->rx) {
		s->rx = NULL;
		STAT_ADD(p->stats.dgram_dropped, 1);
		return -EAGAIN;
	}
	return 0;
}
