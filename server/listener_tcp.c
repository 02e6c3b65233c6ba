/* listener_tcp: accepted TCP connections, STUN framing on the stream
 * (RFC 8489 s6.2.2, RFC 8656 s12.5), idle timeout, connection cap. */
#include "listener.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dispatch.h"
#include "log.h"
#include "rdv_service.h"
#include "turn_dispatch.h"
#include "turn_frame.h"

#define STREAM_OUT_MAX (256 * 1024) /* unsent bytes before we give up on a peer */

/* --- framing ------------------------------------------------------------- */

static int rx_reserve(struct stream_rx *rx, size_t need)
{
	size_t cap = rx->cap ? rx->cap : STREAM_RX_INIT;
	uint8_t *nb;

	if (need <= rx->cap)
		return 0;
	while (cap < need)
		cap *= 2;
	nb = realloc(rx->buf, cap);
	if (!nb)
		return -ENOMEM;
	rx->buf = nb;
	rx->cap = cap;
	return 0;
}

/* The frame length; with rfc5766-channels the channel numbers
 * 0x5000-0x7FFF are framed like ChannelData (RFC 8656 s12.5). */
static int frame_len(const struct stream_rx *rx, const uint8_t *buf, size_t avail,
		     size_t *flen)
{
	int r = turn_stream_frame_len(buf, avail, flen);

	if (r != STUN_E_CHANNEL || !rx->rfc5766_channels)
		return r;
	if (avail < TURN_CHANNEL_HDR_LEN)
		return STUN_E_SHORT;
	*flen = TURN_CHANNEL_HDR_LEN + ((((size_t)buf[2] << 8 | buf[3]) + 3) & ~(size_t)3);
	return 0;
}

/* Deliver every whole frame at the start of buf[0..len); returns bytes
 * consumed, or a negative code. */
static long deliver(const struct stream_rx *rx, const uint8_t *buf, size_t len,
		    stream_frame_fn on_frame, void *arg, int *stop)
{
	size_t off = 0, flen;
	int r;

	while (off < len) {
		r = frame_len(rx, buf + off, len - off, &flen);
		if (r == STUN_E_SHORT)
			break;
		if (r)
			return r;
		if (flen > STREAM_FRAME_MAX)
			return STUN_E_LENGTH;
		if (flen > len - off)
			break;
		*stop = on_frame(arg, buf + off, flen);
		off += flen;
		if (*stop)
			break;
	}
	return (long)off;
}

int stream_rx_feed(struct stream_rx *rx, const uint8_t *data, size_t n,
		   stream_frame_fn on_frame, void *arg)
{
	int stop = 0;
	long used;

	/* Fast path: nothing buffered, frames straight from the caller's bytes. */
	if (!rx->len) {
		used = deliver(rx, data, n, on_frame, arg, &stop);
		if (used < 0)
			return (int)used;
		data += used;
		n -= (size_t)used;
		if (stop || !n)
			return stop;
	}
	if (rx_reserve(rx, rx->len + n))
		return -ENOMEM;
	memcpy(rx->buf + rx->len, data, n);
	rx->len += n;
	used = deliver(rx, rx->buf, rx->len, on_frame, arg, &stop);
	if (used < 0)
		return (int)used;
	if (stop)
		return stop; /* rx may be gone with its connection */
	memmove(rx->buf, rx->buf + used, rx->len - (size_t)used);
	rx->len -= (size_t)used;
	return stop;
}

void stream_rx_free(struct stream_rx *rx)
{
	free(rx->buf);
	memset(rx, 0, sizeof(*rx));
}

/* --- connections --------------------------------------------------------- */

static void conn_unlink(struct stream_conn *c)
{
	struct worker *w = c->w;

	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->n_conns--;
}

void stream_conn_close(struct stream_conn *c)
{
	struct worker *w = c->w;

	turn_dispatch_conn_closed(c);
	rdv_service_conn_closed(c);
	ev_io_stop(w->loop, &c->rio);
	ev_io_stop(w->loop, &c->wio);
	ev_timer_stop(w->loop, &c->idle);
	close(c->fd);
	conn_unlink(c);
	__atomic_sub_fetch(&w->shared->conns, 1, __ATOMIC_RELAXED);
	METRIC_ADD(w->metrics.conns_active, -1);
	stream_rx_free(&c->rx);
	free(c->out);
	free(c);
	worker_maybe_finish(w);
}

/* Write what is pending; returns 0, or -1 if the connection was closed. */
static int conn_flush(struct stream_conn *c)
{
	while (c->out_len) {
		ssize_t r = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ev_io_start(c->w->loop, &c->wio);
			return 0;
		}
		if (r <= 0) {
			stream_conn_close(c);
			return -1;
		}
		METRIC_ADD(c->w->metrics.tx_bytes, (uint64_t)r);
		memmove(c->out, c->out + r, c->out_len - (size_t)r);
		c->out_len -= (size_t)r;
	}
	ev_io_stop(c->w->loop, &c->wio);
	if (c->closing) {
		stream_conn_close(c);
		return -1;
	}
	return 0;
}

int stream_conn_send(struct stream_conn *c, const uint8_t *buf, size_t len)
{
	size_t cap = c->out_cap ? c->out_cap : 2048;
	uint8_t *nb;

	METRIC_INC(c->w->metrics.tx_packets);
	if (c->out_len + len > STREAM_OUT_MAX) {
		metrics_drop(&c->w->metrics, DROP_OVERFLOW);
		stream_conn_close(c);
		return -1;
	}
	while (cap < c->out_len + len)
		cap *= 2;
	if (cap != c->out_cap) {
		nb = realloc(c->out, cap);
		if (!nb) {
			stream_conn_close(c);
			return -1;
		}
		c->out = nb;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, buf, len);
	c->out_len += len;
	return conn_flush(c);
}

void stream_conn_drain(struct stream_conn *c)
{
	c->closing = true;
	ev_io_stop(c->w->loop, &c->rio);
	if (!c->out_len)
		stream_conn_close(c);
}

static int on_frame(void *arg, const uint8_t *frame, size_t len)
{
	struct stream_conn *c = arg;
	struct worker *w = c->w;
	uint8_t resp[UDP_BUF];
	struct stun_in in = { .buf = frame, .len = len, .peer = &c->peer, .laddr = c->laddr,
			      .tp = TP_TCP, .conn = c, .local = &c->local };
	struct stun_out out = { .buf = resp, .cap = sizeof(resp) };

	METRIC_INC(w->metrics.rx_packets);
	ev_timer_again(w->loop, &c->idle);
	if (stun_demux(frame, len) != STUN_DEMUX_STUN) {
		turn_dispatch_channel_data(w, &in);
		return 0;
	}
	dispatch_stun(w, &in, &out);
	if (out.len && stream_conn_send(c, resp, out.len))
		return 1;
	if (c->handoff_to) { /* to the worker that owns the request's state */
		turn_dispatch_handoff(c, frame, len);
		return 1;
	}
	/* after a ConnectionBind no more frames: stop parsing */
	return c->raw ? 1 : 0;
}

static void conn_readable(struct ev_loop *loop, ev_io *io, int revents)
{
	struct stream_conn *c = io->data;
	uint8_t buf[16384];
	ssize_t n;
	int r;

	(void)loop;
	(void)revents;
	n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		stream_conn_close(c);
		return;
	}
	METRIC_ADD(c->w->metrics.rx_bytes, (uint64_t)n);
	if (c->raw) {
		ev_timer_again(c->w->loop, &c->idle);
		c->raw(c->raw_arg, buf, (size_t)n);
		return;
	}
	r = stream_rx_feed(&c->rx, buf, (size_t)n, on_frame, c);
	if (r > 0)
		return; /* closed by a failed send */
	if (r < 0) {
		metrics_drop(&c->w->metrics, DROP_BAD_FRAME);
		log_peer(LOG_INFO, &c->peer.sa, "tcp: closing (bytes that are not a STUN frame)");
		stream_conn_close(c);
	}
}

static void conn_writable(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)loop;
	(void)revents;
	conn_flush(io->data);
}

static void conn_idle(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct stream_conn *c = t->data;

	(void)loop;
	(void)revents;
	metrics_drop(&c->w->metrics, DROP_IDLE_TIMEOUT);
	log_peer(LOG_DEBUG, &c->peer.sa, "tcp: idle, closing");
	stream_conn_close(c);
}

static struct stream_conn *conn_setup(struct worker *w, int laddr, int fd,
				      const stun_sockaddr *peer)
{
	struct stream_conn *c = calloc(1, sizeof(*c));
	socklen_t len;

	if (!c) {
		close(fd);
		return NULL;
	}
	c->w = w;
	c->fd = fd;
	c->peer = *peer;
	c->laddr = laddr;
	len = sizeof(c->local);
	if (getsockname(fd, &c->local.sa, &len))
		c->local = w->shared->laddrs.a[laddr].addr;
	ev_io_init(&c->rio, conn_readable, fd, EV_READ);
	ev_io_init(&c->wio, conn_writable, fd, EV_WRITE);
	c->rio.data = c->wio.data = c;
	ev_init(&c->idle, conn_idle);
	c->idle.repeat = w->cfg->idle_timeout;
	c->rx.rfc5766_channels = w->cfg->rfc5766_channels;
	c->idle.data = c;
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->n_conns++;
	METRIC_INC(w->metrics.conns_total);
	METRIC_ADD(w->metrics.conns_active, 1);
	ev_io_start(w->loop, &c->rio);
	ev_timer_again(w->loop, &c->idle);
	return c;
}

static void conn_new(struct tcp_listener *t, int fd, const stun_sockaddr *peer)
{
	conn_setup(t->w, t->laddr, fd, peer);
}

int stream_conn_detach(struct stream_conn *c)
{
	struct worker *w = c->w;
	int fd = c->fd;

	ev_io_stop(w->loop, &c->rio);
	ev_io_stop(w->loop, &c->wio);
	ev_timer_stop(w->loop, &c->idle);
	conn_unlink(c);
	METRIC_ADD(w->metrics.conns_active, -1);
	stream_rx_free(&c->rx);
	free(c->out);
	free(c);
	worker_maybe_finish(w);
	return fd;
}

void stream_conn_adopt(struct worker *w, int laddr, int fd, const stun_sockaddr *peer,
		       const uint8_t *frame, size_t len)
{
	struct stream_conn *c = conn_setup(w, laddr, fd, peer);

	if (c && frame && len)
		on_frame(c, frame, len);
}

static void tcp_acceptable(struct ev_loop *loop, ev_io *io, int revents)
{
	struct tcp_listener *t = io->data;
	struct worker *w = t->w;
	stun_sockaddr peer;
	socklen_t plen;
	int fd;

	(void)loop;
	(void)revents;
	for (int i = 0; i < 32; i++) {
		plen = sizeof(peer);
		fd = accept4(t->fd, &peer.sa, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		/* The cap is process-wide; each accept reserves a slot. */
		if (__atomic_add_fetch(&w->shared->conns, 1, __ATOMIC_RELAXED) > w->cfg->max_connections) {
			__atomic_sub_fetch(&w->shared->conns, 1, __ATOMIC_RELAXED);
			metrics_drop(&w->metrics, DROP_CONN_LIMIT);
			log_peer(LOG_WARN, &peer.sa, "tcp: refused (max-connections %u reached)",
				 w->cfg->max_connections);
			close(fd);
			continue;
		}
		conn_new(t, fd, &peer);
	}
}

int tcp_listener_open(struct tcp_listener *t, struct worker *w, int laddr,
		      char *err, size_t errlen)
{
	t->w = w;
	t->laddr = laddr;
	t->fd = worker_socket(SOCK_STREAM, &w->shared->laddrs.a[laddr].addr, err, errlen);
	return t->fd < 0 ? t->fd : 0;
}

void tcp_listener_start(struct tcp_listener *t)
{
	if (t->fd < 0)
		return;
	ev_io_init(&t->io, tcp_acceptable, t->fd, EV_READ);
	t->io.data = t;
	ev_io_start(t->w->loop, &t->io);
}

void tcp_listener_close(struct tcp_listener *t)
{
	if (t->fd < 0)
		return;
	if (t->w->loop)
		ev_io_stop(t->w->loop, &t->io);
	close(t->fd);
	t->fd = -1;
}
