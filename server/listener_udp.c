/* listener_udp: datagrams in recvmmsg batches, demultiplexed by the first
 * byte, answered in sendmmsg batches (grouped by the socket they leave
 * from, since RFC 5780 CHANGE-REQUEST answers from another socket). */
#include "listener.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dispatch.h"
#include "log.h"
#include "turn_dispatch.h"

struct udp_batch {
	struct mmsghdr rx[UDP_BATCH];
	struct iovec rx_iov[UDP_BATCH];
	stun_sockaddr rx_addr[UDP_BATCH];
	uint8_t rx_buf[UDP_BATCH][UDP_BUF];

	struct mmsghdr tx[UDP_BATCH];
	struct iovec tx_iov[UDP_BATCH];
	stun_sockaddr tx_addr[UDP_BATCH];
	int tx_fd[UDP_BATCH];
	uint8_t tx_buf[UDP_BATCH][UDP_BUF];
	unsigned n_tx;
};

struct udp_batch *udp_batch_new(void)
{
	struct udp_batch *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	for (int i = 0; i < UDP_BATCH; i++) {
		b->rx_iov[i] = (struct iovec){ b->rx_buf[i], UDP_BUF };
		b->tx_iov[i] = (struct iovec){ b->tx_buf[i], UDP_BUF };
	}
	return b;
}

void udp_batch_free(struct udp_batch *b)
{
	free(b);
}

static void rx_prepare(struct udp_batch *b)
{
	for (int i = 0; i < UDP_BATCH; i++) {
		struct msghdr *h = &b->rx[i].msg_hdr;

		memset(h, 0, sizeof(*h));
		h->msg_name = &b->rx_addr[i];
		h->msg_namelen = sizeof(b->rx_addr[i]);
		h->msg_iov = &b->rx_iov[i];
		h->msg_iovlen = 1;
	}
}

/* Send queued responses: one sendmmsg per run of the same socket. */
static void tx_flush(struct worker *w, struct udp_batch *b)
{
	unsigned i = 0;

	while (i < b->n_tx) {
		unsigned j = i + 1;
		int r;

		while (j < b->n_tx && b->tx_fd[j] == b->tx_fd[i])
			j++;
		r = sendmmsg(b->tx_fd[i], &b->tx[i], j - i, MSG_DONTWAIT);
		if (r < 0)
			r = 0;
		for (unsigned k = i; k < i + (unsigned)r; k++) {
			METRIC_INC(w->metrics.tx_packets);
			METRIC_ADD(w->metrics.tx_bytes, b->tx[k].msg_len);
		}
		/* A short count: the rest of the run is dropped (socket full). */
		for (unsigned k = i + (unsigned)r; k < j; k++)
			metrics_drop(&w->metrics, DROP_SEND_ERROR);
		i = j;
	}
	b->n_tx = 0;
}

static void tx_queue(struct worker *w, struct udp_batch *b, const struct stun_out *out)
{
	unsigned i = b->n_tx++;
	struct msghdr *h = &b->tx[i].msg_hdr;
	int fd = w->udp[out->from].fd;

	b->tx_fd[i] = fd >= 0 ? fd : w->udp[0].fd;
	b->tx_addr[i] = out->to;
	b->tx_iov[i].iov_len = out->len;
	memset(h, 0, sizeof(*h));
	h->msg_name = &b->tx_addr[i];
	h->msg_namelen = stun_sockaddr_len(&out->to);
	h->msg_iov = &b->tx_iov[i];
	h->msg_iovlen = 1;
}

static void handle_datagram(struct udp_listener *u, struct udp_batch *b, int i)
{
	struct worker *w = u->w;
	struct msghdr *h = &b->rx[i].msg_hdr;
	size_t len = b->rx[i].msg_len;
	const uint8_t *buf = b->rx_buf[i];
	struct stun_in in = { buf, len, &b->rx_addr[i], u->laddr, TP_UDP, NULL };
	struct stun_out out = { .buf = b->tx_buf[b->n_tx], .cap = UDP_BUF };

	METRIC_INC(w->metrics.rx_packets);
	METRIC_ADD(w->metrics.rx_bytes, len);
	if (h->msg_flags & MSG_TRUNC) {
		metrics_drop(&w->metrics, DROP_TRUNCATED);
		return;
	}
	switch (stun_demux(buf, len)) {
	case STUN_DEMUX_STUN:
		dispatch_stun(w, &in, &out);
		if (out.len)
			tx_queue(w, b, &out);
		return;
	case STUN_DEMUX_CHANNEL:
		turn_dispatch_channel_data(w, &in);
		return;
	default:
		metrics_drop(&w->metrics, DROP_NOT_STUN);
		log_peer(LOG_INFO, &b->rx_addr[i].sa, "udp: dropped (not_stun: first byte 0x%02x)",
			 len ? buf[0] : 0);
		return;
	}
}

static void udp_readable(struct ev_loop *loop, ev_io *io, int revents)
{
	struct udp_listener *u = io->data;
	struct udp_batch *b = u->w->batch;
	int n;

	(void)loop;
	(void)revents;
	/* One batch per wakeup keeps the loop fair between sockets. */
	rx_prepare(b);
	n = recvmmsg(u->fd, b->rx, UDP_BATCH, MSG_DONTWAIT, NULL);
	if (n <= 0)
		return;
	for (int i = 0; i < n; i++)
		handle_datagram(u, b, i);
	tx_flush(u->w, b);
}

int udp_listener_open(struct udp_listener *u, struct worker *w, int laddr,
		      char *err, size_t errlen)
{
	u->w = w;
	u->laddr = laddr;
	u->fd = worker_socket(SOCK_DGRAM, &w->shared->laddrs.a[laddr].addr, err, errlen);
	return u->fd < 0 ? u->fd : 0;
}

void udp_listener_start(struct udp_listener *u)
{
	if (u->fd < 0)
		return;
	ev_io_init(&u->io, udp_readable, u->fd, EV_READ);
	u->io.data = u;
	ev_io_start(u->w->loop, &u->io);
}

void udp_listener_close(struct udp_listener *u)
{
	if (u->fd < 0)
		return;
	if (u->w->loop)
		ev_io_stop(u->w->loop, &u->io);
	close(u->fd);
	u->fd = -1;
}
