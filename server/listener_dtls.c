/* listener_dtls: STUN over DTLS on tls-listening-port (RFC 8489 s6.2.2,
 * RFC 6347). One UDP socket per listening IP and worker carries every
 * peer: datagrams are read in recvmmsg batches and fed to the tls pool,
 * which keeps a session per source address and answers ClientHellos with
 * HelloVerifyRequest cookies before it keeps any state. Each decrypted
 * datagram is one STUN message; the answer goes back on the session. */
#include "listener_tls.h"

#include <stdlib.h>
#include <string.h>

#include "listener.h"
#include "log.h"
#include "tls.h"

#define DTLS_BATCH 16
#define DTLS_BUF 4096 /* a record with a STUN message of UDP_BUF payload fits */

struct dtls_batch {
	struct mmsghdr rx[DTLS_BATCH];
	struct iovec iov[DTLS_BATCH];
	stun_sockaddr addr[DTLS_BATCH];
	uint8_t buf[DTLS_BATCH][DTLS_BUF];
};

struct dtls_batch *dtls_batch_new(void)
{
	struct dtls_batch *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	for (int i = 0; i < DTLS_BATCH; i++)
		b->iov[i] = (struct iovec){ b->buf[i], DTLS_BUF };
	return b;
}

void dtls_batch_free(struct dtls_batch *b)
{
	free(b);
}

static void rx_prepare(struct dtls_batch *b)
{
	for (int i = 0; i < DTLS_BATCH; i++) {
		struct msghdr *h = &b->rx[i].msg_hdr;

		memset(h, 0, sizeof(*h));
		h->msg_name = &b->addr[i];
		h->msg_namelen = sizeof(b->addr[i]);
		h->msg_iov = &b->iov[i];
		h->msg_iovlen = 1;
	}
}

void dtls_on_data(struct tls_sess *s, const uint8_t *buf, size_t len)
{
	struct tls_listener *l = tls_pool_arg(tls_sess_pool(s));
	stun_sockaddr peer;
	socklen_t pl;
	const struct sockaddr *sa = tls_sess_peer(s, &pl);

	memset(&peer, 0, sizeof(peer));
	memcpy(&peer, sa, pl < sizeof(peer) ? pl : sizeof(peer));
	tls_reply(s, l, &peer, buf, len);
}

static void dtls_readable(struct ev_loop *loop, ev_io *io, int revents)
{
	struct tls_listener *l = io->data;
	struct worker *w = l->tw->w;
	struct dtls_batch *b = l->tw->batch;
	int n;

	(void)loop;
	(void)revents;
	tls_worker_sync(l->tw);
	rx_prepare(b);
	n = recvmmsg(l->fd, b->rx, DTLS_BATCH, MSG_DONTWAIT, NULL);
	for (int i = 0; i < n && l->pool; i++) {
		struct msghdr *h = &b->rx[i].msg_hdr;

		if (h->msg_flags & MSG_TRUNC) {
			metrics_drop(&w->metrics, DROP_TRUNCATED);
			continue;
		}
		tls_pool_dgram(l->pool, &b->addr[i].sa, h->msg_namelen, b->buf[i], b->rx[i].msg_len);
	}
}

int dtls_listener_start(struct tls_listener *l)
{
	int r = tls_listener_pool(l);

	if (r)
		return r;
	ev_io_init(&l->io, dtls_readable, l->fd, EV_READ);
	l->io.data = l;
	ev_io_start(l->tw->w->loop, &l->io);
	return 0;
}
