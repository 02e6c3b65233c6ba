/* listener_udp: datagrams in recvmmsg batches, demultiplexed by the first
 * byte, answered in sendmmsg batches (grouped by the socket they leave
 * from, since RFC 5780 CHANGE-REQUEST answers from another socket). */
#include "listener.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dispatch.h"
#include "log.h"
#include "sockbuf.h"
#include "turn_dispatch.h"

/* Room for one IP_PKTINFO or IPV6_PKTINFO control message. */
#define PKTINFO_SPACE CMSG_SPACE(sizeof(struct in6_pktinfo))

struct udp_batch {
	struct mmsghdr rx[UDP_BATCH];
	struct iovec rx_iov[UDP_BATCH];
	stun_sockaddr rx_addr[UDP_BATCH];
	stun_sockaddr rx_local[UDP_BATCH];
	uint8_t rx_ctl[UDP_BATCH][PKTINFO_SPACE] __attribute__((aligned(8)));
	uint8_t rx_buf[UDP_BATCH][UDP_BUF];

	struct mmsghdr tx[UDP_BATCH];
	struct iovec tx_iov[UDP_BATCH];
	stun_sockaddr tx_addr[UDP_BATCH];
	int tx_fd[UDP_BATCH];
	uint8_t tx_ctl[UDP_BATCH][PKTINFO_SPACE] __attribute__((aligned(8)));
	uint8_t tx_buf[UDP_BATCH][UDP_BUF];
	unsigned n_tx;
};

/* The fixed parts of the receive headers, set once. */
static void rx_prepare(struct udp_batch *b)
{
	for (int i = 0; i < UDP_BATCH; i++) {
		struct msghdr *h = &b->rx[i].msg_hdr;

		memset(h, 0, sizeof(*h));
		h->msg_name = &b->rx_addr[i];
		h->msg_iov = &b->rx_iov[i];
		h->msg_iovlen = 1;
	}
}

struct udp_batch *udp_batch_new(void)
{
	struct udp_batch *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	for (int i = 0; i < UDP_BATCH; i++) {
		b->rx_iov[i] = (struct iovec){ b->rx_buf[i], UDP_BUF };
		b->tx_iov[i] = (struct iovec){ b->tx_buf[i], UDP_BUF };
	}
	rx_prepare(b);
	return b;
}

void udp_batch_free(struct udp_batch *b)
{
	free(b);
}

/* Reset what recvmmsg changes in the first n headers, and the control
 * buffer (wildcard sockets only), since one batch serves every socket. */
static void rx_rearm(struct udp_batch *b, int n, bool pktinfo)
{
	for (int i = 0; i < n; i++) {
		struct msghdr *h = &b->rx[i].msg_hdr;

		h->msg_namelen = sizeof(b->rx_addr[i]);
		h->msg_control = pktinfo ? b->rx_ctl[i] : NULL;
		h->msg_controllen = pktinfo ? PKTINFO_SPACE : 0;
	}
}

/* The local address a datagram reached (wildcard sockets), or NULL. */
static const stun_sockaddr *rx_local(struct udp_batch *b, int i, const stun_sockaddr *bound)
{
	struct msghdr *h = &b->rx[i].msg_hdr;
	stun_sockaddr *l = &b->rx_local[i];

	*l = *bound;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			l->in4.sin_addr = pi.ipi_addr;
			return l;
		}
		if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			l->in6.sin6_addr = pi.ipi6_addr;
			return l;
		}
	}
	return NULL;
}

/* Answer from the address the request reached (RFC 8489 s6.3.1.2: the
 * response goes from the transport address the request was received on). */
static void tx_set_source(struct msghdr *h, uint8_t *ctl, const stun_sockaddr *local)
{
	struct cmsghdr *c;

	memset(ctl, 0, PKTINFO_SPACE);
	h->msg_control = ctl;
	if (local->sa.sa_family == AF_INET) {
		struct in_pktinfo pi = { .ipi_spec_dst = local->in4.sin_addr };

		h->msg_controllen = CMSG_SPACE(sizeof(pi));
		c = CMSG_FIRSTHDR(h);
		c->cmsg_level = IPPROTO_IP;
		c->cmsg_type = IP_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(c), &pi, sizeof(pi));
		return;
	}
	struct in6_pktinfo pi6 = { .ipi6_addr = local->in6.sin6_addr };

	h->msg_controllen = CMSG_SPACE(sizeof(pi6));
	c = CMSG_FIRSTHDR(h);
	c->cmsg_level = IPPROTO_IPV6;
	c->cmsg_type = IPV6_PKTINFO;
	c->cmsg_len = CMSG_LEN(sizeof(pi6));
	memcpy(CMSG_DATA(c), &pi6, sizeof(pi6));
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

static void tx_queue(struct worker *w, struct udp_batch *b, const struct stun_out *out,
		     const stun_sockaddr *local)
{
	unsigned i = b->n_tx++;
	struct msghdr *h = &b->tx[i].msg_hdr;
	const struct udp_listener *from = &w->udp[out->from];
	int fd = from->tx_fd >= 0 ? from->tx_fd : from->fd;

	b->tx_fd[i] = fd >= 0 ? fd : w->udp[0].fd;
	b->tx_addr[i] = out->to;
	b->tx_iov[i].iov_len = out->len;
	memset(h, 0, sizeof(*h));
	h->msg_name = &b->tx_addr[i];
	h->msg_namelen = stun_sockaddr_len(&out->to);
	h->msg_iov = &b->tx_iov[i];
	h->msg_iovlen = 1;
	if (local)
		tx_set_source(h, b->tx_ctl[i], local);
}

static void handle_datagram(struct udp_listener *u, struct udp_batch *b, int i)
{
	struct worker *w = u->w;
	struct msghdr *h = &b->rx[i].msg_hdr;
	size_t len = b->rx[i].msg_len;
	const uint8_t *buf = b->rx_buf[i];
	const struct laddr *la = &w->shared->laddrs.a[u->laddr];
	const stun_sockaddr *local = la->wildcard ? rx_local(b, i, &la->addr) : NULL;
	struct stun_in in = { .buf = buf, .len = len, .peer = &b->rx_addr[i], .laddr = u->laddr,
			      .tp = TP_UDP, .local = local };
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
			tx_queue(w, b, &out, out.from == u->laddr ? local : NULL);
		return;
	case STUN_DEMUX_CHANNEL:
		turn_dispatch_channel_data(w, &in);
		return;
	default:
		if (turn_dispatch_legacy_channel(w, &in))
			return;
		metrics_drop(&w->metrics, DROP_NOT_STUN);
		log_peer(LOG_INFO, &b->rx_addr[i].sa, "udp: dropped (not_stun: first byte 0x%02x)",
			 len ? buf[0] : 0);
		return;
	}
}

static bool w_wildcard(const struct udp_listener *u)
{
	return u->w->shared->laddrs.a[u->laddr].wildcard;
}

/* Read batches until one comes back short (the queue is drained) or
 * UDP_ROUNDS full ones were served: under load that saves an epoll_wait per
 * batch, and the bound keeps the loop fair between sockets. */
static void udp_readable(struct ev_loop *loop, ev_io *io, int revents)
{
	struct udp_listener *u = io->data;
	struct udp_batch *b = u->w->batch;
	bool pktinfo = w_wildcard(u);
	int n = UDP_BATCH;

	(void)loop;
	(void)revents;
	for (int round = 0; round < UDP_ROUNDS && n == UDP_BATCH; round++) {
		rx_rearm(b, UDP_BATCH, pktinfo);
		n = recvmmsg(u->fd, b->rx, UDP_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			return;
		for (int i = 0; i < n; i++)
			handle_datagram(u, b, i);
		turn_dispatch_flush(u->w);
		tx_flush(u->w, b);
	}
}

/* A send-only socket on the same address and port: answers leave through
 * it, so the listening socket (watched by epoll) sees no write-space wakeup
 * per datagram sent. Connected to its own address, it never receives: the
 * kernel gives a connected UDP socket only its peer's datagrams and leaves
 * it out of the SO_REUSEPORT choice for the rest (Linux >= 5.4; shown by
 * tests/integration/test_udp_send_twin.py). Wildcard addresses keep
 * sending from the listening socket (connect() would pin a source).
 * Optional: on any failure the listening socket sends. */
static void open_tx_twin(struct udp_listener *u, const struct laddr *la)
{
	char err[128];
	int fd;

	u->tx_fd = -1;
	if (la->wildcard)
		return;
	fd = worker_socket(SOCK_DGRAM, &la->addr, err, sizeof(err));
	if (fd < 0)
		return;
	/* Only our own datagrams to ourselves (RESPONSE-PORT = our port) could
	 * ever queue on it: the smallest receive buffer bounds them. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &(int){ 1 }, sizeof(int)) ||
	    connect(fd, &la->addr.sa, stun_sockaddr_len(&la->addr))) {
		close(fd);
		return;
	}
	u->tx_fd = fd;
}

int udp_listener_open(struct udp_listener *u, struct worker *w, int laddr,
		      char *err, size_t errlen)
{
	const struct laddr *la = &w->shared->laddrs.a[laddr];
	int one = 1;

	u->w = w;
	u->laddr = laddr;
	u->fd = worker_socket(SOCK_DGRAM, &la->addr, err, errlen);
	if (u->fd < 0)
		return u->fd;
	/* A wildcard socket learns each datagram's local address. */
	if (la->wildcard &&
	    (la->addr.sa.sa_family == AF_INET
		     ? setsockopt(u->fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one))
		     : setsockopt(u->fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one)))) {
		snprintf(err, errlen, "udp: PKTINFO: %s", strerror(errno));
		close(u->fd);
		u->fd = -1;
		return -EINVAL;
	}
	sockbuf_apply(u->fd, w->cfg->udp_recv_buffer, w->cfg->udp_send_buffer,
		      SOCKBUF_LISTENER);
	open_tx_twin(u, la);
	return 0;
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
	if (u->tx_fd >= 0)
		close(u->tx_fd);
	u->tx_fd = -1;
}
