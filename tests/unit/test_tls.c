/* Unit tests for server/tls: TLS over AF_UNIX stream socketpairs, DTLS over
 * AF_UNIX datagram sockets (socketpairs and abstract-named sockets), with
 * self-signed certificates made by `openssl req` in a temp dir. No network.
 * The client side is plain mbedTLS, independent of the code under test. */
#include <CUnit/Basic.h>
#include <ev.h>
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/timing.h>
#include <mbedtls/x509_crt.h>

#include "tls.h"

static char tmp[64];
static char cert1[128], key1[128], cert2[128], key2[128], junk[128];

/* ---- fixtures ----------------------------------------------------------- */

static int make_cert(const char *cert, const char *key, const char *cn)
{
	char cmd[768];

	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
		 "-keyout %s -out %s -days 2 -subj /CN=%s >/dev/null 2>&1", key, cert, cn);
	return system(cmd) == 0 ? 0 : -1;
}

static int suite_init(void)
{
	FILE *f;

	snprintf(tmp, sizeof(tmp), "/tmp/natkit-tls-XXXXXX");
	if (!mkdtemp(tmp))
		return -1;
	snprintf(cert1, sizeof(cert1), "%s/cert1.pem", tmp);
	snprintf(key1, sizeof(key1), "%s/key1.pem", tmp);
	snprintf(cert2, sizeof(cert2), "%s/cert2.pem", tmp);
	snprintf(key2, sizeof(key2), "%s/key2.pem", tmp);
	snprintf(junk, sizeof(junk), "%s/junk.pem", tmp);
	if (make_cert(cert1, key1, "stund-one") || make_cert(cert2, key2, "stund-two"))
		return -1;
	f = fopen(junk, "w");
	if (!f)
		return -1;
	fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", f);
	fclose(f);
	return 0;
}

static int suite_clean(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	return system(cmd) == 0 ? 0 : -1;
}

/* Server side: echo every piece of application data back. */
struct srv {
	int opened, closed;
	enum tls_close_reason why;
	size_t bytes;
};

static void srv_data(struct tls_sess *s, const uint8_t *buf, size_t len)
{
	struct srv *st = tls_pool_arg(tls_sess_pool(s));

	st->bytes += len;
	tls_sess_send(s, buf, len);
}

static void srv_open(struct tls_sess *s)
{
	struct srv *st = tls_pool_arg(tls_sess_pool(s));

	st->opened++;
}

static void srv_close(struct tls_sess *s, enum tls_close_reason why)
{
	struct srv *st = tls_pool_arg(tls_sess_pool(s));

	st->closed++;
	st->why = why;
}

static const struct tls_pool_ops srv_ops = {
	.on_data = srv_data, .on_open = srv_open, .on_close = srv_close,
};

static struct tls_pool *pool_make(struct ev_loop *loop, struct tls_ctx *ctx, int fd,
				  enum tls_kind kind, unsigned max, struct srv *st)
{
	struct tls_pool_cfg cfg = {
		.kind = kind, .max_sessions = max, .idle_timeout = 30,
		.handshake_timeout = 10, .ops = &srv_ops, .arg = st,
	};
	struct tls_pool *p = NULL;

	CU_ASSERT_EQUAL_FATAL(tls_pool_new(&p, loop, ctx, fd, &cfg), 0);
	return p;
}

static struct tls_ctx *ctx_load(const char *cert, const char *key)
{
	char err[256];
	struct tls_ctx *c = NULL;
	int ret = tls_ctx_load(&c, cert, key, err, sizeof(err));

	if (ret)
		fprintf(stderr, "tls_ctx_load: %s\n", err);
	CU_ASSERT_EQUAL_FATAL(ret, 0);
	return c;
}

/* DTLS server socket reader: what listener_dtls does with recvmmsg. */
struct dgram_reader {
	ev_io io;
	struct tls_pool *pool;
};

static void reader_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct dgram_reader *r = (struct dgram_reader *)w;
	uint8_t buf[4096];
	struct sockaddr_storage from;
	socklen_t fl;
	ssize_t n;

	(void)loop;
	(void)revents;
	for (;;) {
		fl = sizeof(from);
		n = recvfrom(w->fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
		if (n < 0)
			return;
		tls_pool_dgram(r->pool, (struct sockaddr *)&from, fl, buf, (size_t)n);
	}
}

/* ---- an independent mbedTLS client ------------------------------------- */

struct cli {
	mbedtls_entropy_context ent;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_ssl_config conf;
	mbedtls_ssl_context ssl;
	mbedtls_timing_delay_context timer;
	mbedtls_net_context net;
};

static void cli_init(struct cli *c, int fd, int transport)
{
	mbedtls_entropy_init(&c->ent);
	mbedtls_ctr_drbg_init(&c->drbg);
	mbedtls_ssl_config_init(&c->conf);
	mbedtls_ssl_init(&c->ssl);
	mbedtls_net_init(&c->net);
	c->net.fd = fd;
	mbedtls_net_set_nonblock(&c->net);
	CU_ASSERT_EQUAL_FATAL(mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->ent,
						    NULL, 0), 0);
	CU_ASSERT_EQUAL_FATAL(mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT, transport,
							  MBEDTLS_SSL_PRESET_DEFAULT), 0);
	mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_NONE);
	mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &c->drbg);
	mbedtls_ssl_conf_handshake_timeout(&c->conf, 100, 400);
	CU_ASSERT_EQUAL_FATAL(mbedtls_ssl_setup(&c->ssl, &c->conf), 0);
	mbedtls_ssl_set_bio(&c->ssl, &c->net, mbedtls_net_send, mbedtls_net_recv, NULL);
	if (transport == MBEDTLS_SSL_TRANSPORT_DATAGRAM)
		mbedtls_ssl_set_timer_cb(&c->ssl, &c->timer, mbedtls_timing_set_delay,
					 mbedtls_timing_get_delay);
}

static void cli_free(struct cli *c)
{
	mbedtls_net_free(&c->net); /* closes fd */
	mbedtls_ssl_free(&c->ssl);
	mbedtls_ssl_config_free(&c->conf);
	mbedtls_ctr_drbg_free(&c->drbg);
	mbedtls_entropy_free(&c->ent);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Let the server loop run and time pass a little. */
static void spin(struct ev_loop *loop, int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	ev_run(loop, EVRUN_NOWAIT);
	poll(&pfd, 1, 2);
	ev_run(loop, EVRUN_NOWAIT);
}

static int cli_handshake(struct ev_loop *loop, struct cli *c, double timeout)
{
	double end = now_s() + timeout;
	int ret;

	while (now_s() < end) {
		ret = mbedtls_ssl_handshake(&c->ssl);
		if (ret != MBEDTLS_ERR_SSL_WANT_READ && ret != MBEDTLS_ERR_SSL_WANT_WRITE)
			return ret;
		spin(loop, c->net.fd);
	}
	return -ETIMEDOUT;
}

/* Read exactly len bytes (stream) or one datagram; returns bytes or error. */
static int cli_read(struct ev_loop *loop, struct cli *c, uint8_t *buf, size_t len, bool one)
{
	double end = now_s() + 5;
	size_t got = 0;
	int ret;

	while (got < len && now_s() < end) {
		ret = mbedtls_ssl_read(&c->ssl, buf + got, len - got);
		if (ret > 0) {
			got += (size_t)ret;
			if (one)
				break;
			continue;
		}
		if (ret != MBEDTLS_ERR_SSL_WANT_READ && ret != MBEDTLS_ERR_SSL_WANT_WRITE &&
		    ret != MBEDTLS_ERR_SSL_TIMEOUT)
			return ret;
		spin(loop, c->net.fd);
	}
	return (int)got;
}

static int cli_write(struct ev_loop *loop, struct cli *c, const uint8_t *buf, size_t len)
{
	size_t off = 0;
	int ret;

	while (off < len) {
		ret = mbedtls_ssl_write(&c->ssl, buf + off, len - off);
		if (ret > 0) {
			off += (size_t)ret;
			continue;
		}
		if (ret != MBEDTLS_ERR_SSL_WANT_READ && ret != MBEDTLS_ERR_SSL_WANT_WRITE)
			return ret;
		spin(loop, c->net.fd);
	}
	return 0;
}

static void cli_expect_cn(struct cli *c, const char *cn)
{
	const mbedtls_x509_crt *crt = mbedtls_ssl_get_peer_cert(&c->ssl);
	char dn[256];

	CU_ASSERT_PTR_NOT_NULL_FATAL(crt);
	mbedtls_x509_dn_gets(dn, sizeof(dn), &crt->subject);
	CU_ASSERT_PTR_NOT_NULL(strstr(dn, cn));
}

static void cli_echo(struct ev_loop *loop, struct cli *c, const char *msg, bool dgram)
{
	uint8_t buf[256];
	size_t len = strlen(msg);

	CU_ASSERT_EQUAL(cli_write(loop, c, (const uint8_t *)msg, len), 0);
	CU_ASSERT_EQUAL(cli_read(loop, c, buf, len, dgram), (int)len);
	CU_ASSERT_EQUAL(memcmp(buf, msg, len), 0);
}

static void wait_for(struct ev_loop *loop, int fd, const int *counter, int want)
{
	double end = now_s() + 5;

	while (*counter < want && now_s() < end)
		spin(loop, fd);
}

/* ---- tests ------------------------------------------------------------- */

static void expect_load_error(const char *cert, const char *key, const char *needle1,
			      const char *needle2)
{
	char err[256] = "";
	struct tls_ctx *c = NULL;

	CU_ASSERT(tls_ctx_load(&c, cert, key, err, sizeof(err)) < 0);
	CU_ASSERT_PTR_NULL(c);
	if (!strstr(err, needle1) || !strstr(err, needle2))
		fprintf(stderr, "unexpected error text: %s\n", err);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, needle1));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, needle2));
}

static void test_load_errors(void)
{
	char missing[160];

	snprintf(missing, sizeof(missing), "%s/nope.pem", tmp);
	expect_load_error(missing, key1, missing, "No such file");
	expect_load_error(cert1, missing, missing, "No such file");
	expect_load_error(junk, key1, junk, "PEM"); /* mbedTLS's reason */
	expect_load_error(cert1, junk, junk, "PK");
	expect_load_error(cert1, key2, key2, "does not match");
	tls_ctx_unref(ctx_load(cert1, key1));
}

static void test_tls_echo(void)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct tls_ctx *ctx = ctx_load(cert1, key1);
	struct srv st = { 0 };
	struct tls_pool *p = pool_make(loop, ctx, -1, TLS_KIND_STREAM, 4, &st);
	struct cli c;
	int sv[2];

	CU_ASSERT_STRING_EQUAL(tls_ctx_subject(ctx), "CN=stund-one");
	tls_ctx_unref(ctx); /* the pool holds its own reference */
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	CU_ASSERT_EQUAL_FATAL(tls_pool_accept(p, sv[0], NULL, 0, NULL), 0);
	cli_init(&c, sv[1], MBEDTLS_SSL_TRANSPORT_STREAM);
	CU_ASSERT_EQUAL(cli_handshake(loop, &c, 5), 0);
	cli_expect_cn(&c, "stund-one");
	cli_echo(loop, &c, "hello over tls", false);
	cli_echo(loop, &c, "and again", false);
	CU_ASSERT_EQUAL(st.opened, 1);
	CU_ASSERT_EQUAL(tls_pool_stats(p)->handshakes, 1);
	CU_ASSERT_EQUAL(tls_pool_stats(p)->active, 1);
	mbedtls_ssl_close_notify(&c.ssl);
	wait_for(loop, sv[1], &st.closed, 1);
	CU_ASSERT_EQUAL(st.closed, 1);
	CU_ASSERT_EQUAL(st.why, TLS_CLOSE_PEER);
	CU_ASSERT_EQUAL(tls_pool_stats(p)->active, 0);
	cli_free(&c);
	tls_pool_free(p);
	ev_loop_destroy(loop);
}

/* More than the socket buffers hold, so the server queues and waits for
 * EV_WRITE, in 32 KiB writes the client interleaves with reads. */
static void test_tls_bulk(void)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct tls_ctx *ctx = ctx_load(cert1, key1);
	struct srv st = { 0 };
	struct tls_pool *p = pool_make(loop, ctx, -1, TLS_KIND_STREAM, 4, &st);
	static uint8_t out[32768], in[32768];
	struct cli c;
	int sv[2];

	tls_ctx_unref(ctx);
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	CU_ASSERT_EQUAL_FATAL(tls_pool_accept(p, sv[0], NULL, 0, NULL), 0);
	cli_init(&c, sv[1], MBEDTLS_SSL_TRANSPORT_STREAM);
	CU_ASSERT_EQUAL_FATAL(cli_handshake(loop, &c, 5), 0);
	for (int i = 0; i < 32; i++) {
		for (size_t j = 0; j < sizeof(out); j++)
			out[j] = (uint8_t)(i * 7 + j);
		CU_ASSERT_EQUAL_FATAL(cli_write(loop, &c, out, sizeof(out)), 0);
		CU_ASSERT_EQUAL_FATAL(cli_read(loop, &c, in, sizeof(in), false), (int)sizeof(in));
		CU_ASSERT_EQUAL_FATAL(memcmp(in, out, sizeof(in)), 0);
	}
	CU_ASSERT_EQUAL(st.bytes, 32 * sizeof(out));
	cli_free(&c);
	wait_for(loop, -1, &st.closed, 1);
	CU_ASSERT_EQUAL(st.why, TLS_CLOSE_PEER); /* EOF without close_notify */
	tls_pool_free(p);
	ev_loop_destroy(loop);
}

static void test_dtls_echo(void)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct tls_ctx *ctx = ctx_load(cert1, key1);
	struct srv st = { 0 };
	struct dgram_reader r;
	struct cli c;
	int sv[2];

	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
	r.pool = pool_make(loop, ctx, sv[0], TLS_KIND_DGRAM, 4, &st);
	tls_ctx_unref(ctx);
	ev_io_init(&r.io, reader_cb, sv[0], EV_READ);
	ev_io_start(loop, &r.io);
	cli_init(&c, sv[1], MBEDTLS_SSL_TRANSPORT_DATAGRAM);
	CU_ASSERT_EQUAL(cli_handshake(loop, &c, 5), 0);
	cli_expect_cn(&c, "stund-one");
	/* RFC 6347 s4.2.1: the first ClientHello got a HelloVerifyRequest and
	 * only the second, with the cookie, made a session. */
	CU_ASSERT_EQUAL(tls_pool_stats(r.pool)->hello_verify_sent, 1);
	CU_ASSERT_EQUAL(tls_pool_stats(r.pool)->handshakes, 1);
	CU_ASSERT_EQUAL(st.opened, 1);
	cli_echo(loop, &c, "one datagram", true);
	cli_echo(loop, &c, "another datagram", true);
	CU_ASSERT_EQUAL(st.bytes, strlen("one datagram") + strlen("another datagram"));
	mbedtls_ssl_close_notify(&c.ssl);
	wait_for(loop, sv[1], &st.closed, 1);
	CU_ASSERT_EQUAL(st.why, TLS_CLOSE_PEER);
	CU_ASSERT_EQUAL(tls_pool_stats(r.pool)->active, 0);
	cli_free(&c);
	ev_io_stop(loop, &r.io);
	tls_pool_free(r.pool);
	close(sv[0]);
	ev_loop_destroy(loop);
}

/* An abstract AF_UNIX datagram socket named natkit-tls-<pid>-<tag>,
 * connected to peer if given: many DTLS peers on one server socket. */
static int unix_dgram(const char *tag, const char *peer)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	socklen_t al = offsetof(struct sockaddr_un, sun_path) + 1;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);

	CU_ASSERT_FATAL(fd >= 0);
	al += (socklen_t)snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, "natkit-tls-%d-%s",
				  (int)getpid(), tag);
	CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&a, al), 0);
	if (!peer)
		return fd;
	al = offsetof(struct sockaddr_un, sun_path) + 1;
	al += (socklen_t)snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, "natkit-tls-%d-%s",
				  (int)getpid(), peer);
	CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *)&a, al), 0);
	return fd;
}

static void test_dtls_peers_and_cap(void)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct tls_ctx *ctx = ctx_load(cert1, key1);
	struct srv st = { 0 };
	struct dgram_reader r;
	struct cli a, b, c2;
	int sfd = unix_dgram("srv", NULL);

	r.pool = pool_make(loop, ctx, sfd, TLS_KIND_DGRAM, 2, &st);
	tls_ctx_unref(ctx);
	ev_io_init(&r.io, reader_cb, sfd, EV_READ);
	ev_io_start(loop, &r.io);
	cli_init(&a, unix_dgram("a", "srv"), MBEDTLS_SSL_TRANSPORT_DATAGRAM);
	cli_init(&b, unix_dgram("b", "srv"), MBEDTLS_SSL_TRANSPORT_DATAGRAM);
	cli_init(&c2, unix_dgram("c", "srv"), MBEDTLS_SSL_TRANSPORT_DATAGRAM);
	CU_ASSERT_EQUAL(cli_handshake(loop, &a, 5), 0);
	CU_ASSERT_EQUAL(cli_handshake(loop, &b, 5), 0);
	cli_echo(loop, &a, "from a", true);
	cli_echo(loop, &b, "from b", true);
	CU_ASSERT_EQUAL(tls_pool_stats(r.pool)->active, 2);
	/* The pool is full: the third peer gets nothing, not even a cookie. */
	CU_ASSERT_EQUAL(cli_handshake(loop, &c2, 5), MBEDTLS_ERR_SSL_TIMEOUT);
	CU_ASSERT(tls_pool_stats(r.pool)->refused_cap >= 1);
	CU_ASSERT_EQUAL(tls_pool_stats(r.pool)->hello_verify_sent, 2);
	/* a leaves; a retry of the third peer gets in. */
	mbedtls_ssl_close_notify(&a.ssl);
	wait_for(loop, sfd, &st.closed, 1);
	CU_ASSERT_EQUAL(mbedtls_ssl_session_reset(&c2.ssl), 0);
	CU_ASSERT_EQUAL(cli_handshake(loop, &c2, 5), 0);
	cli_echo(loop, &c2, "from c", true);
	cli_echo(loop, &b, "b still here", true);
	cli_free(&a);
	cli_free(&b);
	cli_free(&c2);
	ev_io_stop(loop, &r.io);
	tls_pool_free(r.pool);
	CU_ASSERT_EQUAL(st.closed, 3); /* a, then b and c at pool teardown */
	close(sfd);
	ev_loop_destroy(loop);
}

/* A peer that proves its address (cookie) and then goes silent holds a
 * session only until handshake_timeout; junk from unknown peers is dropped. */
static void test_dtls_handshake_timeout(void)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct tls_ctx *ctx = ctx_load(cert1, key1);
	struct srv st = { 0 };
	struct dgram_reader r;
	struct cli c;
	int sv[2];
	double end = now_s() + 5;

	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
	r.pool = pool_make(loop, ctx, sv[0], TLS_KIND_DGRAM, 4, &st);
	tls_ctx_unref(ctx);
	tls_pool_set_timeouts(r.pool, 5, 0.3);
	ev_io_init(&r.io, reader_cb, sv[0], EV_READ);
	ev_io_start(loop, &r.io);
	CU_ASSERT_EQUAL(send(sv[1], "not a DTLS record", 17, 0), 17);
	spin(loop, sv[1]);
	CU_ASSERT_EQUAL(tls_pool_stats(r.pool)->dgram_dropped, 1);
	CU_ASSERT_EQUAL(tls_pool_stats(r.pool)->active, 0);
	cli_init(&c, sv[1], MBEDTLS_SSL_TRANSPORT_DATAGRAM);
	/* Step the client until the server holds a session for it, then stop. */
	while (tls_pool_stats(r.pool)->active == 0 && now_s() < end) {
		mbedtls_ssl_handshake(&c.ssl);
		spin(loop, sv[1]);
	}
	CU_ASSERT_EQUAL_FATAL(tls_pool_stats(r.pool)->active, 1);
	CU_ASSERT_EQUAL(tls_pool_stats(r.pool)->hello_verify_sent, 1);
	wait_for(loop, -1, &st.closed, 1);
	CU_ASSERT_EQUAL(st.why, TLS_CLOSE_HANDSHAKE_TIMEOUT);
	CU_ASSERT_EQUAL(tls_pool_stats(r.pool)->handshake_timeouts, 1);
	CU_ASSERT_EQUAL(tls_pool_stats(r.pool)->active, 0);
	CU_ASSERT_EQUAL(st.opened, 0);
	cli_free(&c);
	ev_io_stop(loop, &r.io);
	tls_pool_free(r.pool);
	close(sv[0]);
	ev_loop_destroy(loop);
}

/* The owner's admit callback (a process-wide cap) can refuse sessions: a TLS
 * accept fails with -EBUSY, a DTLS peer with a valid cookie gets no session. */
static bool admit_ok;

static bool srv_admit(struct tls_pool *p, const struct sockaddr *peer, socklen_t len)
{
	(void)p;
	(void)peer;
	(void)len;
	return admit_ok;
}

static const struct tls_pool_ops admit_ops = {
	.on_data = srv_data, .on_open = srv_open, .on_close = srv_close, .admit = srv_admit,
};

static void test_admit(void)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct tls_ctx *ctx = ctx_load(cert1, key1);
	struct srv st = { 0 };
	struct tls_pool_cfg cfg = {
		.kind = TLS_KIND_STREAM, .max_sessions = 8, .idle_timeout = 30,
		.handshake_timeout = 10, .ops = &admit_ops, .arg = &st,
	};
	struct tls_pool *tp = NULL;
	struct dgram_reader r;
	struct cli c;
	int sv[2], du[2];

	CU_ASSERT_EQUAL_FATAL(tls_pool_new(&tp, loop, ctx, -1, &cfg), 0);
	admit_ok = false;
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	CU_ASSERT_EQUAL(tls_pool_accept(tp, sv[0], NULL, 0, NULL), -EBUSY);
	CU_ASSERT_EQUAL(tls_pool_stats(tp)->refused_cap, 1);
	CU_ASSERT_EQUAL(tls_pool_stats(tp)->active, 0);
	close(sv[0]);
	close(sv[1]);

	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_DGRAM, 0, du), 0);
	cfg.kind = TLS_KIND_DGRAM;
	CU_ASSERT_EQUAL_FATAL(tls_pool_new(&r.pool, loop, ctx, du[0], &cfg), 0);
	tls_ctx_unref(ctx);
	ev_io_init(&r.io, reader_cb, du[0], EV_READ);
	ev_io_start(loop, &r.io);
	cli_init(&c, du[1], MBEDTLS_SSL_TRANSPORT_DATAGRAM);
	CU_ASSERT_EQUAL(cli_handshake(loop, &c, 5), MBEDTLS_ERR_SSL_TIMEOUT);
	CU_ASSERT(tls_pool_stats(r.pool)->hello_verify_sent >= 1);
	CU_ASSERT(tls_pool_stats(r.pool)->refused_cap >= 1);
	CU_ASSERT_EQUAL(tls_pool_stats(r.pool)->active, 0);
	admit_ok = true;
	CU_ASSERT_EQUAL(mbedtls_ssl_session_reset(&c.ssl), 0);
	CU_ASSERT_EQUAL(cli_handshake(loop, &c, 5), 0);
	cli_echo(loop, &c, "admitted", true);
	CU_ASSERT_EQUAL(st.closed, 0); /* refused sessions never reach on_close */
	cli_free(&c);
	ev_io_stop(loop, &r.io);
	tls_pool_free(r.pool);
	tls_pool_free(tp);
	CU_ASSERT_EQUAL(st.opened, 1);
	CU_ASSERT_EQUAL(st.closed, 1);
	close(du[0]);
	ev_loop_destroy(loop);
}

/* SIGHUP-style reload: a new context for new sessions, old ones keep theirs. */
static void test_reload(void)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct tls_ctx *c1 = ctx_load(cert1, key1), *c2;
	struct srv st = { 0 };
	struct tls_pool *p = pool_make(loop, c1, -1, TLS_KIND_STREAM, 4, &st);
	struct cli a, b;
	int sa[2], sb[2];

	tls_ctx_unref(c1);
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sa), 0);
	CU_ASSERT_EQUAL_FATAL(tls_pool_accept(p, sa[0], NULL, 0, NULL), 0);
	cli_init(&a, sa[1], MBEDTLS_SSL_TRANSPORT_STREAM);
	CU_ASSERT_EQUAL_FATAL(cli_handshake(loop, &a, 5), 0);
	cli_expect_cn(&a, "stund-one");

	c2 = ctx_load(cert2, key2);
	tls_pool_set_ctx(p, c2);
	tls_ctx_unref(c2);

	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sb), 0);
	CU_ASSERT_EQUAL_FATAL(tls_pool_accept(p, sb[0], NULL, 0, NULL), 0);
	cli_init(&b, sb[1], MBEDTLS_SSL_TRANSPORT_STREAM);
	CU_ASSERT_EQUAL_FATAL(cli_handshake(loop, &b, 5), 0);
	cli_expect_cn(&b, "stund-two");
	cli_echo(loop, &a, "old session still up", false);
	cli_echo(loop, &b, "new session", false);
	CU_ASSERT_EQUAL(st.closed, 0);
	cli_free(&a);
	cli_free(&b);
	tls_pool_free(p); /* frees the old context with its last session */
	ev_loop_destroy(loop);
}

static void test_timeouts_and_cap(void)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct tls_ctx *ctx = ctx_load(cert1, key1);
	struct srv st = { 0 };
	struct tls_pool *p = pool_make(loop, ctx, -1, TLS_KIND_STREAM, 1, &st);
	struct cli c;
	uint8_t buf[16];
	int sv[2], sw[2];

	tls_ctx_unref(ctx);
	tls_pool_set_timeouts(p, 0.2, 0.2);
	/* A client that never says hello is dropped after handshake_timeout. */
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	CU_ASSERT_EQUAL_FATAL(tls_pool_accept(p, sv[0], NULL, 0, NULL), 0);
	/* Cap of one: a second connection is refused while the first lives. */
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sw), 0);
	CU_ASSERT_EQUAL(tls_pool_accept(p, sw[0], NULL, 0, NULL), -EBUSY);
	CU_ASSERT_EQUAL(tls_pool_stats(p)->refused_cap, 1);
	wait_for(loop, sv[1], &st.closed, 1);
	CU_ASSERT_EQUAL(st.why, TLS_CLOSE_HANDSHAKE_TIMEOUT);
	CU_ASSERT_EQUAL(tls_pool_stats(p)->handshake_timeouts, 1);
	CU_ASSERT_EQUAL(read(sv[1], buf, sizeof(buf)), 0); /* the server closed it */
	close(sv[1]);

	/* Now there is room; an established but silent client times out idle
	 * and receives a close_notify. */
	CU_ASSERT_EQUAL_FATAL(tls_pool_accept(p, sw[0], NULL, 0, NULL), 0);
	cli_init(&c, sw[1], MBEDTLS_SSL_TRANSPORT_STREAM);
	CU_ASSERT_EQUAL_FATAL(cli_handshake(loop, &c, 5), 0);
	wait_for(loop, sw[1], &st.closed, 2);
	CU_ASSERT_EQUAL(st.why, TLS_CLOSE_IDLE);
	CU_ASSERT_EQUAL(tls_pool_stats(p)->idle_timeouts, 1);
	CU_ASSERT_EQUAL(cli_read(loop, &c, buf, sizeof(buf), true),
			MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
	cli_free(&c);
	tls_pool_free(p);
	ev_loop_destroy(loop);
}

int main(void)
{
	CU_pSuite s;
	unsigned fails;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("tls", suite_init, suite_clean);
	CU_add_test(s, "ctx load errors name file and reason", test_load_errors);
	CU_add_test(s, "TLS handshake and echo", test_tls_echo);
	CU_add_test(s, "TLS bulk echo through the send queue", test_tls_bulk);
	CU_add_test(s, "DTLS HelloVerifyRequest, handshake and echo", test_dtls_echo);
	CU_add_test(s, "DTLS many peers on one socket, session cap", test_dtls_peers_and_cap);
	CU_add_test(s, "DTLS handshake timeout, junk dropped", test_dtls_handshake_timeout);
	CU_add_test(s, "admit callback refuses TLS and DTLS sessions", test_admit);
	CU_add_test(s, "reload: new sessions new cert, old ones stay", test_reload);
	CU_add_test(s, "handshake and idle timeouts, accept cap", test_timeouts_and_cap);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	fails = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
