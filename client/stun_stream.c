/* stun_stream: STUN and ChannelData over one TCP or TLS connection (see
 * stun_stream.h). */
#include "stun_stream.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "turn_frame.h"

/* RFC 8489 s6.2.2: a frame is at most a STUN message (20 + 65535) or
 * ChannelData (4 + 65535 + 3 of padding): two fit. */
#define IN_CAP (2 * STUN_MAX_MSG_LEN)
#define TLS_CHUNK 16384
#define CONNECT_TIMEOUT_S 10.0
/* Data unacknowledged this long: the connection is dead (a server gone
 * without a FIN, a path that broke), like RFC 7675's 30 s of consent. */
#define USER_TIMEOUT_MS 30000
#define SYSTEM_CA "/etc/ssl/certs/ca-certificates.crt"

struct stun_stream {
	struct ev_loop *loop;
	int fd;
	ev_io io;
	int io_events;
	ev_timer conn_timer;   /* connect + handshake must finish by then */
	ev_timer fail_timer;   /* reports a failure from outside the caller */
	bool connected;        /* TCP */
	bool up;               /* TCP, and TLS done when tls */
	bool tls;
	bool failed;           /* no more I/O; on_closed is due */
	int err;
	char why[320];
	int depth;             /* > 0 inside our callbacks */
	bool dead;             /* freed while depth > 0 */
	stun_stream_frame_cb on_frame;
	stun_stream_closed_cb on_closed;
	void *arg;
	/* TLS */
	bool tls_init;
	bool insecure;
	char host[256];
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_x509_crt ca;
	mbedtls_ssl_config conf;
	mbedtls_ssl_context ssl;
	size_t tls_pending;    /* a write mbedtls must be given again (WANT_*) */
	int sock_err;          /* errno of the socket call that failed under TLS */
	/* buffers */
	uint8_t *in;
	size_t in_len;
	uint8_t *out;
	size_t out_head, out_len;
};

static void io_set(struct stun_stream *s, int events)
{
	if (s->io_events == events)
		return;
	ev_io_stop(s->loop, &s->io);
	ev_io_set(&s->io, s->fd, events);
	s->io_events = events;
	if (events)
		ev_io_start(s->loop, &s->io);
}

/* Every failure goes through here: I/O stops now, the owner hears of it
 * on the next loop iteration (never from inside its own call). */
static void fail(struct stun_stream *s, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fail(struct stun_stream *s, int err, const char *fmt, ...)
{
	va_list ap;

	if (s->failed)
		return;
	s->failed = true;
	s->err = err < 0 ? err : -EIO;
	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	io_set(s, 0);
	ev_timer_stop(s->loop, &s->conn_timer);
	ev_timer_set(&s->fail_timer, 0., 0.);
	ev_timer_start(s->loop, &s->fail_timer);
}

static void really_free(struct stun_stream *s)
{
	if (s->tls_init) {
		mbedtls_ssl_free(&s->ssl);
		mbedtls_ssl_config_free(&s->conf);
		mbedtls_x509_crt_free(&s->ca);
		mbedtls_ctr_drbg_free(&s->drbg);
		mbedtls_entropy_free(&s->entropy);
	}
	if (s->fd >= 0)
		close(s->fd);
	free(s->in);
	free(s->out);
	free(s);
}

static void fail_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct stun_stream *s = w->data;

	(void)loop;
	(void)revents;
	s->depth++;
	if (s->on_closed)
		s->on_closed(s->arg, s->err, s->why);
	s->depth--;
	if (s->dead && !s->depth)
		really_free(s);
}

static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct stun_stream *s = w->data;

	(void)loop;
	(void)revents;
	fail(s, -ETIMEDOUT, "%s", s->connected
	     ? "the TLS handshake did not finish within 10 s"
	     : "no TCP connection within 10 s (does the server listen on that port? "
	       "does a firewall drop it?)");
}

static void tcp_fail(struct stun_stream *s, int e)
{
	if (e == ETIMEDOUT)
		fail(s, -e, "the TCP connection timed out (nothing acknowledged for %u s: the "
		     "server or the path to it is gone)", USER_TIMEOUT_MS / 1000);
	else
		fail(s, -e, "the TCP connection failed: %s", strerror(e));
}

/* ---- TLS ---- */

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
	struct stun_stream *s = ctx;
	ssize_t n = send(s->fd, buf, len, MSG_NOSIGNAL);

	if (n >= 0)
		return (int)n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	s->sock_err = errno;
	return MBEDTLS_ERR_NET_SEND_FAILED;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
	struct stun_stream *s = ctx;
	ssize_t n = recv(s->fd, buf, len, 0);

	if (n >= 0)
		return (int)n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return MBEDTLS_ERR_SSL_WANT_READ;
	s->sock_err = errno;
	return MBEDTLS_ERR_NET_RECV_FAILED;
}

static int load_ca(struct stun_stream *s, const char *ca_file, char *err, size_t cap)
{
	const char *path = ca_file ? ca_file : SYSTEM_CA;
	int ret = mbedtls_x509_crt_parse_file(&s->ca, path);
	char reason[160];

	if (ret >= 0 && s->ca.version)
		return 0;
	if (!ca_file) {
		snprintf(err, cap, "tls:// needs the CA that signed the server's certificate: "
			 "--ca FILE (or \"ca = FILE\" in --config), or --insecure to skip the check");
		return -EINVAL;
	}
	mbedtls_strerror(ret, reason, sizeof(reason));
	snprintf(err, cap, "cannot read the CA file %s: %s (PEM or DER certificates)", path,
		 reason);
	return -EINVAL;
}

static int tls_setup(struct stun_stream *s, const struct stun_stream_opts *o, char *err,
		     size_t cap)
{
	static const char pers[] = "natclient";
	int ret;

	mbedtls_entropy_init(&s->entropy);
	mbedtls_ctr_drbg_init(&s->drbg);
	mbedtls_x509_crt_init(&s->ca);
	mbedtls_ssl_config_init(&s->conf);
	mbedtls_ssl_init(&s->ssl);
	s->tls_init = true;
	s->insecure = o->insecure;
	snprintf(s->host, sizeof(s->host), "%s", o->host ? o->host : "");
	if (!o->insecure && load_ca(s, o->ca_file, err, cap) < 0)
		return -EINVAL;
	ret = mbedtls_ctr_drbg_seed(&s->drbg, mbedtls_entropy_func, &s->entropy,
				    (const unsigned char *)pers, sizeof(pers) - 1);
	if (!ret)
		ret = mbedtls_ssl_config_defaults(&s->conf, MBEDTLS_SSL_IS_CLIENT,
						  MBEDTLS_SSL_TRANSPORT_STREAM,
						  MBEDTLS_SSL_PRESET_DEFAULT);
	if (ret)
		goto out;
	mbedtls_ssl_conf_min_version(&s->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
				     MBEDTLS_SSL_MINOR_VERSION_3); /* TLS 1.2 */
	mbedtls_ssl_conf_rng(&s->conf, mbedtls_ctr_drbg_random, &s->drbg);
	mbedtls_ssl_conf_authmode(&s->conf, o->insecure ? MBEDTLS_SSL_VERIFY_NONE
							: MBEDTLS_SSL_VERIFY_REQUIRED);
	if (!o->insecure)
		mbedtls_ssl_conf_ca_chain(&s->conf, &s->ca, NULL);
	ret = mbedtls_ssl_setup(&s->ssl, &s->conf);
	/* the name checked against the certificate's DNS names or CN, and SNI */
	if (!ret && s->host[0])
		ret = mbedtls_ssl_set_hostname(&s->ssl, s->host);
out:
	if (ret) {
		char reason[160];
		mbedtls_strerror(ret, reason, sizeof(reason));
		snprintf(err, cap, "TLS set-up failed: %s", reason);
		return -EIO;
	}
	mbedtls_ssl_set_bio(&s->ssl, s, bio_send, bio_recv, NULL);
	return 0;
}

static void tls_fail(struct stun_stream *s, int ret)
{
	char reason[200];

	if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
		uint32_t flags = mbedtls_ssl_get_verify_result(&s->ssl);
		char info[256];
		int n = mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags);

		while (n > 0 && (info[n - 1] == '\n' || info[n - 1] == ' '))
			info[--n] = '\0';
		for (char *p = info; *p; p++)
			if (*p == '\n')
				*p = ';';
		fail(s, -EACCES, "TLS: the server's certificate was rejected (%s): check --ca FILE "
		     "and that the certificate names \"%s\", or use --insecure to skip the check",
		     info, s->host);
		return;
	}
	if ((ret == MBEDTLS_ERR_NET_SEND_FAILED || ret == MBEDTLS_ERR_NET_RECV_FAILED) &&
	    s->sock_err) {
		tcp_fail(s, s->sock_err);
		return;
	}
	if (ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || ret == MBEDTLS_ERR_SSL_CONN_EOF) {
		fail(s, -ECONNRESET, "%s", s->up ? "the server closed the TLS connection"
		     : "the server closed the connection during the TLS handshake "
		       "(is this port TLS?)");
		return;
	}
	mbedtls_strerror(ret, reason, sizeof(reason));
	fail(s, -EPROTO, "TLS %s: %s", s->up ? "error" : "handshake failed", reason);
}

/* ---- reading: the framing (RFC 8489 s6.2.2, RFC 8656 s12.5) ---- */

static void deliver(struct stun_stream *s)
{
	size_t off = 0, flen;

	while (!s->failed && !s->dead && off < s->in_len) {
		const uint8_t *p = s->in + off;
		int r = turn_stream_frame_len(p, s->in_len - off, &flen);

		if (r == STUN_E_SHORT || (!r && flen > s->in_len - off))
			break;
		if (r) {
			fail(s, -EPROTO, "the server sent bytes that are neither STUN nor "
			     "ChannelData (first byte 0x%02x): is this a STUN/TURN port?", p[0]);
			return;
		}
		off += flen;
		if (p[0] >= 0x40) /* ChannelData: without its padding */
			flen = TURN_CHANNEL_HDR_LEN + ((size_t)p[2] << 8 | p[3]);
		s->on_frame(s->arg, p, flen);
	}
	if (s->failed || s->dead)
		return;
	memmove(s->in, s->in + off, s->in_len - off);
	s->in_len -= off;
}

/* One read: > 0 bytes, 0 nothing more now, < 0 failed (reported). */
static int read_some(struct stun_stream *s)
{
	uint8_t *dst = s->in + s->in_len;
	size_t room = IN_CAP - s->in_len;

	if (s->tls) {
		int ret = mbedtls_ssl_read(&s->ssl, dst, room);
		if (ret > 0)
			return ret;
		if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
			return 0;
		tls_fail(s, ret ? ret : MBEDTLS_ERR_SSL_CONN_EOF);
		return -1;
	}
	ssize_t n = recv(s->fd, dst, room, 0);
	if (n > 0)
		return (int)n;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	if (n == 0)
		fail(s, -ECONNRESET, "the server closed the TCP connection");
	else
		tcp_fail(s, errno);
	return -1;
}

static void do_read(struct stun_stream *s)
{
	for (int i = 0; i < 64 && !s->failed && !s->dead; i++) {
		int n = read_some(s);
		if (n <= 0)
			return;
		s->in_len += (size_t)n;
		deliver(s);
	}
}

/* ---- writing ---- */

static void do_flush(struct stun_stream *s)
{
	while (s->out_len && !s->failed) {
		const uint8_t *p = s->out + s->out_head;
		ssize_t n;

		if (s->tls) {
			size_t chunk = s->tls_pending ? s->tls_pending
				       : s->out_len < TLS_CHUNK ? s->out_len : TLS_CHUNK;
			int ret = mbedtls_ssl_write(&s->ssl, p, chunk);
			if (ret == MBEDTLS_ERR_SSL_WANT_WRITE || ret == MBEDTLS_ERR_SSL_WANT_READ) {
				s->tls_pending = chunk; /* the same call again, later */
				break;
			}
			if (ret < 0) {
				tls_fail(s, ret);
				return;
			}
			s->tls_pending = 0;
			n = ret;
		} else {
			n = send(s->fd, p, s->out_len, MSG_NOSIGNAL);
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
				break;
			if (n < 0) {
				tcp_fail(s, errno);
				return;
			}
		}
		s->out_head += (size_t)n;
		s->out_len -= (size_t)n;
	}
	if (!s->out_len)
		s->out_head = 0;
	io_set(s, EV_READ | (s->out_len ? EV_WRITE : 0));
}

int stun_stream_send(struct stun_stream *s, const uint8_t *buf, size_t len)
{
	/* s12.5: ChannelData over a stream MUST be padded to a multiple of 4 */
	size_t padded = len && buf[0] >= 0x40 ? (len + 3) & ~(size_t)3 : len;

	if (s->failed || s->dead)
		return -ENOTCONN;
	if (s->out_len + padded > STUN_STREAM_OUT_MAX)
		return -ENOBUFS;
	if (s->out_head + s->out_len + padded > STUN_STREAM_OUT_MAX) {
		memmove(s->out, s->out + s->out_head, s->out_len);
		s->out_head = 0;
	}
	uint8_t *dst = s->out + s->out_head + s->out_len;
	memcpy(dst, buf, len);
	memset(dst + len, 0, padded - len);
	s->out_len += padded;
	if (s->up && !s->tls_pending)
		do_flush(s);
	return 0;
}

/* ---- connecting ---- */

static void now_up(struct stun_stream *s)
{
	s->up = true;
	ev_timer_stop(s->loop, &s->conn_timer);
	do_flush(s);
}

static void handshake(struct stun_stream *s)
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
		tls_fail(s, ret);
		return;
	}
	now_up(s);
}

static void connected(struct stun_stream *s)
{
	int soerr = 0;
	socklen_t sl = sizeof(soerr);

	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		soerr = errno;
	if (soerr) {
		fail(s, -soerr, "cannot connect to the server over TCP: %s", strerror(soerr));
		return;
	}
	s->connected = true;
	if (s->tls)
		handshake(s);
	else
		now_up(s);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct stun_stream *s = w->data;

	(void)loop;
	s->depth++;
	if (!s->connected)
		connected(s);
	else if (!s->up)
		handshake(s);
	else {
		if (revents & EV_READ)
			do_read(s);
		if (!s->failed && !s->dead)
			do_flush(s);
		/* mbedTLS may hold decrypted bytes the socket no longer signals */
		if (s->tls && !s->failed && !s->dead && mbedtls_ssl_get_bytes_avail(&s->ssl))
			do_read(s);
	}
	s->depth--;
	if (s->dead && !s->depth)
		really_free(s);
}

static int open_socket(struct stun_stream *s, const stun_sockaddr *server, char *err,
		       size_t cap)
{
	unsigned ut = USER_TIMEOUT_MS;
	int on = 1;

	s->fd = socket(stun_sockaddr_family(server), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		snprintf(err, cap, "socket: %s", strerror(errno));
		return -errno;
	}
	/* small messages (checks, indications) should not wait for Nagle */
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	setsockopt(s->fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof(ut));
	if (connect(s->fd, &server->sa, stun_sockaddr_len(server)) < 0 && errno != EINPROGRESS) {
		int e = errno;
		snprintf(err, cap, "cannot connect to the server over TCP: %s", strerror(e));
		return -e;
	}
	return 0;
}

int stun_stream_open(struct ev_loop *loop, const stun_sockaddr *server,
		     const struct stun_stream_opts *o, stun_stream_frame_cb on_frame,
		     stun_stream_closed_cb on_closed, void *arg, struct stun_stream **out,
		     char *err, size_t cap)
{
	struct stun_stream *s = calloc(1, sizeof(*s));
	int rc;

	if (!s) {
		snprintf(err, cap, "out of memory");
		return -ENOMEM;
	}
	s->fd = -1;
	s->loop = loop;
	s->tls = o->tls;
	s->on_frame = on_frame;
	s->on_closed = on_closed;
	s->arg = arg;
	s->in = malloc(IN_CAP);
	s->out = malloc(STUN_STREAM_OUT_MAX);
	if (!s->in || !s->out) {
		snprintf(err, cap, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	if (o->tls && (rc = tls_setup(s, o, err, cap)) < 0)
		goto out;
	rc = open_socket(s, server, err, cap);
	if (rc < 0)
		goto out;
	ev_io_init(&s->io, io_cb, s->fd, 0);
	s->io.data = s;
	io_set(s, EV_WRITE); /* writable: the connect is done, one way or the other */
	ev_timer_init(&s->conn_timer, conn_timer_cb, CONNECT_TIMEOUT_S, 0.);
	s->conn_timer.data = s;
	ev_timer_start(loop, &s->conn_timer);
	ev_timer_init(&s->fail_timer, fail_timer_cb, 0., 0.);
	s->fail_timer.data = s;
	*out = s;
	return 0;
out:
	really_free(s);
	return rc;
}

void stun_stream_free(struct stun_stream *s)
{
	if (!s || s->dead)
		return;
	io_set(s, 0);
	ev_timer_stop(s->loop, &s->conn_timer);
	ev_timer_stop(s->loop, &s->fail_timer);
	if (s->tls && s->up && !s->failed)
		mbedtls_ssl_close_notify(&s->ssl); /* best effort */
	s->dead = true;
	if (!s->depth)
		really_free(s);
}

int stun_stream_fd(const struct stun_stream *s)
{
	return s->fd;
}

bool stun_stream_is_tls(const struct stun_stream *s)
{
	return s->tls;
}

bool stun_stream_is_up(const struct stun_stream *s)
{
	return s->up && !s->failed;
}
