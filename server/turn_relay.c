/* turn_relay: the packet path between clients and peers (RFC 8656 s11-s12,
 * s14): relayed sockets, Send indications and ChannelData towards peers,
 * Data indications and ChannelData towards clients written in place in the
 * receive buffer's headroom, ICMP errors from peers (s11.5), max-bps. */
#include <errno.h>
#include <time.h>
#include <linux/errqueue.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peer_filter.h"
#include "turn_frame.h"
#include "sockbuf.h"
#include "turn_internal.h"

static struct turn_relay *relay_of(struct turn_alloc *a)
{
	return turn_alloc_ext(a);
}

static void drop(struct turn_service *ts, enum turn_drop why)
{
	turn_count(&ts->ctr.dropped[why], 1);
}

int turn_peer_check(struct turn_service *ts, const stun_sockaddr *peer)
{
	enum peer_reason r;

	if (!ts->filter)
		return 0;
	r = peer_filter_check(ts->filter, peer);
	peer_counters_add(ts->peer_ctr, r);
	return r == PEER_OK ? 0 : -EPERM;
}

/* ---- relayed sockets --------------------------------------------------- */

static void relay_cb(struct ev_loop *loop, ev_io *w, int revents);

static int relay_socket(const stun_sockaddr *addr)
{
	int one = 1, fam = addr->sa.sa_family;
	int fd = socket(fam, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	/* s11.5: ICMP errors from peers reach us through the error queue. */
	if (fam == AF_INET)
		setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof(one));
	else {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof(one));
	}
	if (bind(fd, &addr->sa, stun_sockaddr_len(addr)) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

int turn_relay_open(struct turn_service *ts, struct turn_alloc *a, int i,
		    const stun_sockaddr *addr)
{
	struct turn_relay *r = relay_of(a);
	int fd = relay_socket(addr);

	if (fd < 0)
		return fd;
	sockbuf_apply(fd, ts->rcvbuf, ts->sndbuf, SOCKBUF_RELAY);
	ev_io_init(&r->io[i], relay_cb, fd, EV_READ);
	r->io[i].data = a;
	ev_io_start(ts->loop, &r->io[i]);
	turn_addr_key_set(&a->relayed[i], addr);
	a->n_relayed = (uint8_t)(i + 1);
	return 0;
}

/* turn_table release hook: close the sockets, free the ports. */
void turn_relay_release(struct turn_alloc *a, void *arg)
{
	struct turn_service *ts = arg;
	struct turn_relay *r = relay_of(a);

	turn_flush(ts); /* nothing queued may outlive the sockets */
	turn_tcp_release(ts, a);
	for (int i = 0; i < a->n_relayed; i++) {
		stun_sockaddr sa;

		ev_io_stop(ts->loop, &r->io[i]);
		close(r->io[i].fd);
		turn_addr_key_to_sa(&a->relayed[i], &sa);
		relay_ports_put(ts->sh->ports, &sa);
	}
}

/* The relayed socket of the peer's family, or -1 (s10.2: 443). */
static int relay_fd(struct turn_alloc *a, int family, int *idx)
{
	for (int i = 0; i < a->n_relayed; i++) {
		if (a->relayed[i].family == family) {
			*idx = i;
			return relay_of(a)->io[i].fd;
		}
	}
	return -1;
}

/* max-bps (bytes per second, as coturn's): a token bucket of one second's
 * worth, both directions. */
static bool bandwidth_ok(struct turn_service *ts, struct turn_relay *r, size_t len)
{
	double rate, now;

	if (!r->max_bps)
		return true;
	rate = (double)r->max_bps;
	now = ev_now(ts->loop);
	r->bucket_bytes = fmin(rate, r->bucket_bytes + (now - r->bucket_at) * rate);
	r->bucket_at = now;
	if (r->bucket_bytes < (double)len)
		return false;
	r->bucket_bytes -= (double)len;
	return true;
}

/* ---- client -> peer ---------------------------------------------------- */

static struct turn_alloc *alloc_of_link(struct turn_service *ts, const struct turn_link *link)
{
	struct turn_5tuple ft;

	turn_5tuple_set(&ft, link->proto, &link->client, &link->local);
	return turn_alloc_find(ts->table, &ft);
}

/* RFC 8656 s14: DF on the outgoing datagram as the Send indication asks. */
static void set_df(struct turn_relay *r, int i, int family, bool on)
{
	int v;

	r->df[i] = on;
	if (family == AF_INET) {
		v = on ? IP_PMTUDISC_DO : IP_PMTUDISC_DONT;
		setsockopt(r->io[i].fd, IPPROTO_IP, IP_MTU_DISCOVER, &v, sizeof(v));
		return;
	}
	v = on;
	setsockopt(r->io[i].fd, IPPROTO_IPV6, IPV6_DONTFRAG, &v, sizeof(v));
}

#define GSO_MAX_SEGS 64
#define GSO_MAX_BYTES 60000

/* Datagrams of one length (the last may be shorter) to one destination go
 * as one UDP_SEGMENT send: one trip through the stack, which the kernel
 * splits into the same datagrams. n if sent, 0 if the caller must send
 * them one by one (not that shape, or the kernel refused). */
static int send_gso(int fd, const stun_sockaddr *to, struct iovec *iov, int n)
{
	union {
		char buf[CMSG_SPACE(sizeof(uint16_t))];
		struct cmsghdr align;
	} ctl;
	struct msghdr h = { .msg_name = (void *)to, .msg_namelen = stun_sockaddr_len(to),
			    .msg_iov = iov, .msg_iovlen = (size_t)n,
			    .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&h);
	uint16_t seg = (uint16_t)iov[0].iov_len;
	size_t total = 0;

	if (n < 2 || n > GSO_MAX_SEGS)
		return 0;
	for (int i = 0; i < n; i++) {
		if (iov[i].iov_len > seg || (iov[i].iov_len < seg && i < n - 1) || !iov[i].iov_len)
			return 0;
		total += iov[i].iov_len;
	}
	if (total > GSO_MAX_BYTES)
		return 0;
	c->cmsg_level = SOL_UDP;
	c->cmsg_type = UDP_SEGMENT;
	c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
	memcpy(CMSG_DATA(c), &seg, sizeof(seg));
	return sendmsg(fd, &h, MSG_DONTWAIT) < 0 ? 0 : n;
}

/* One sendmmsg per relayed socket for the datagrams queued to it, in
 * order (a batch from a few clients costs a few system calls, not one per
 * datagram). */
/* One relayed socket's queued datagrams: one GSO send when they all go to
 * one peer in one size, else one sendmmsg. Returns how many went. */
static int send_run(int fd, struct mmsghdr *run, unsigned n)
{
	struct iovec iov[TURN_PEER_TX];
	const stun_sockaddr *to = run[0].msg_hdr.msg_name;
	unsigned k;
	int sent;

	for (k = 0; k < n && stun_sockaddr_equal(run[k].msg_hdr.msg_name, to); k++)
		iov[k] = run[k].msg_hdr.msg_iov[0];
	if (k == n && send_gso(fd, to, iov, (int)n))
		return (int)n;
	sent = sendmmsg(fd, run, n, MSG_DONTWAIT);
	return sent < 0 ? 0 : sent;
}

void turn_flush(struct turn_service *ts)
{
	struct mmsghdr run[TURN_PEER_TX];
	bool done[TURN_PEER_TX] = { false };

	for (unsigned i = 0; i < ts->n_ptx; i++) {
		unsigned n = 0;
		int sent;

		if (done[i])
			continue;
		for (unsigned j = i; j < ts->n_ptx; j++) {
			if (done[j] || ts->ptx_fd[j] != ts->ptx_fd[i])
				continue;
			run[n++] = ts->ptx_msg[j];
			done[j] = true;
		}
		sent = send_run(ts->ptx_fd[i], run, n);
		for (int k = 0; k < sent; k++)
			turn_count(&ts->ctr.bytes_to_peer, run[k].msg_hdr.msg_iov[0].iov_len);
		turn_count(&ts->ctr.pkts_to_peer, (uint64_t)sent);
		if ((unsigned)sent < n)
			turn_count(&ts->ctr.dropped[TD_SEND_ERROR], n - (unsigned)sent);
	}
	ts->n_ptx = 0;
}

static void queue_to_peer(struct turn_service *ts, int fd, const stun_sockaddr *peer,
			  const uint8_t *data, size_t len)
{
	unsigned i;
	struct msghdr *h;

	if (ts->n_ptx == TURN_PEER_TX)
		turn_flush(ts);
	i = ts->n_ptx++;
	ts->ptx_fd[i] = fd;
	ts->ptx_to[i] = *peer;
	ts->ptx_iov[i] = (struct iovec){ (void *)data, len };
	h = &ts->ptx_msg[i].msg_hdr;
	memset(h, 0, sizeof(*h));
	h->msg_name = &ts->ptx_to[i];
	h->msg_namelen = stun_sockaddr_len(peer);
	h->msg_iov = &ts->ptx_iov[i];
	h->msg_iovlen = 1;
}

/* From a UDP link the datagram is queued for turn_flush(); from a stream,
 * whose buffer does not outlive the call, or with a DF change, it goes now. */
static void to_peer(struct turn_service *ts, struct turn_alloc *a, const struct turn_link *link,
		    const stun_sockaddr *peer, const uint8_t *data, size_t len, int df)
{
	struct turn_relay *r = relay_of(a);
	int i = 0, fd = relay_fd(a, peer->sa.sa_family, &i);

	if (fd < 0)
		return drop(ts, TD_NO_PERMISSION);
	if (!bandwidth_ok(ts, r, len))
		return drop(ts, TD_BANDWIDTH);
	if (df >= 0 && r->df[i] != (df != 0)) {
		turn_flush(ts); /* what is queued goes out with the old setting */
		set_df(r, i, peer->sa.sa_family, df);
	}
	if (!link->send && link->udp_fd >= 0) {
		queue_to_peer(ts, fd, peer, data, len);
		return;
	}
	if (sendto(fd, data, len, 0, &peer->sa, stun_sockaddr_len(peer)) < 0)
		return drop(ts, TD_SEND_ERROR);
	turn_count(&ts->ctr.pkts_to_peer, 1);
	turn_count(&ts->ctr.bytes_to_peer, len);
}

/* RFC 8656 s11.2 */
void turn_handle_send(struct turn_service *ts, const struct turn_link *link,
		      const struct stun_msg *ind)
{
	struct turn_alloc *a = alloc_of_link(ts, link);
	const stun_sockaddr *peer = &ind->xor_peer[0];
	struct turn_addr_key pk;

	/* s5: no allocation on this 5-tuple: silently ignored (a TCP
	 * allocation relays on data connections only, RFC 6062 s4.5) */
	if (!a || a->transport != IPPROTO_UDP)
		return drop(ts, TD_NO_ALLOCATION);
	/* both XOR-PEER-ADDRESS and DATA, else discarded */
	if (!ind->n_xor_peer || !stun_msg_has(ind, STUN_ATTR_DATA))
		return drop(ts, TD_MALFORMED);
	/* a permission for the peer's IP, else discarded (not refreshed) */
	turn_addr_key_set(&pk, peer);
	if (!turn_perm_check(&a->ps, &pk, ev_now(ts->loop)))
		return drop(ts, TD_NO_PERMISSION);
	/* restrictions on the address and port: silently discarded */
	if (turn_peer_check(ts, peer))
		return drop(ts, TD_FILTERED);
	to_peer(ts, a, link, peer, ind->data.p, ind->data.len,
		stun_msg_has(ind, STUN_ATTR_DONT_FRAGMENT));
}

/* RFC 8656 s12.6; with rfc5766-channels also 0x5000-0x7FFF (RFC 5766 s11). */
static int chandata_parse(struct turn_service *ts, const uint8_t *buf, size_t len,
			  uint16_t *number, const uint8_t **data, uint16_t *dlen)
{
	if (len < TURN_CHANNEL_HDR_LEN || buf[0] < 0x50 || !ts->rfc5766_channels)
		return turn_chandata_parse(buf, len, number, data, dlen);
	if (buf[0] > 0x7F)
		return STUN_E_CHANNEL;
	*number = (uint16_t)(buf[0] << 8 | buf[1]);
	*dlen = (uint16_t)(buf[2] << 8 | buf[3]);
	*data = buf + TURN_CHANNEL_HDR_LEN;
	return len - TURN_CHANNEL_HDR_LEN < *dlen ? STUN_E_SHORT : 0;
}

/* RFC 8656 s12.6 */
void turn_handle_channel_data(struct turn_service *ts, const struct turn_link *link,
			      const uint8_t *buf, size_t len)
{
	struct turn_alloc *a = alloc_of_link(ts, link);
	const struct turn_chan *c;
	const uint8_t *data;
	uint16_t number, dlen;
	stun_sockaddr peer;

	if (!a)
		return drop(ts, TD_NO_ALLOCATION);
	/* reserved numbers and datagrams shorter than the length: discarded */
	if (chandata_parse(ts, buf, len, &number, &data, &dlen))
		return drop(ts, TD_MALFORMED);
	/* a channel not bound to any peer: discarded; no refresh (s12.6) */
	c = turn_chan_by_number(&a->ps, number, ev_now(ts->loop));
	if (!c)
		return drop(ts, TD_NO_CHANNEL);
	turn_addr_key_to_sa(&c->peer, &peer);
	to_peer(ts, a, link, &peer, data, dlen, -1);
}

/* ---- peer -> client ---------------------------------------------------- */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

/* XOR-PEER-ADDRESS value (s18.3 / RFC 8489 s14.2) for tid; returns length. */
static size_t put_xor_peer(uint8_t *p, const stun_sockaddr *peer, const uint8_t *hdr)
{
	const uint8_t *key = hdr + 4; /* cookie then transaction ID */
	const uint8_t *ip;
	size_t n;

	p[0] = 0;
	if (peer->sa.sa_family == AF_INET) {
		p[1] = STUN_FAMILY_IPV4;
		put16(p + 2, ntohs(peer->in4.sin_port) ^ (STUN_MAGIC_COOKIE >> 16));
		ip = (const uint8_t *)&peer->in4.sin_addr;
		n = 4;
	} else {
		p[1] = STUN_FAMILY_IPV6;
		put16(p + 2, ntohs(peer->in6.sin6_port) ^ (STUN_MAGIC_COOKIE >> 16));
		ip = (const uint8_t *)&peer->in6.sin6_addr;
		n = 16;
	}
	for (size_t i = 0; i < n; i++)
		p[4 + i] = ip[i] ^ key[i];
	return 4 + n;
}

static void next_tid(struct turn_service *ts, uint8_t *tid)
{
	ts->tid_seq[1]++;
	memcpy(tid, &ts->tid_seq[0], 4);
	memcpy(tid + 4, &ts->tid_seq[1], 8);
}

/* The Data indication header that ends right before data (s11.3): the
 * 20-byte header, XOR-PEER-ADDRESS and the DATA attribute header; the
 * caller's tailroom takes the padding. Returns the start. */
static uint8_t *data_ind_header(struct turn_service *ts, uint8_t *data, size_t len,
				const stun_sockaddr *peer, size_t *frame_len)
{
	size_t xlen = peer->sa.sa_family == AF_INET ? 8 : 20;
	size_t pad = (4 - len % 4) % 4;
	uint8_t *h = data - (20 + 4 + xlen + 4);

	put16(h, 0x0017); /* Data indication: method 0x007, class 0b01 */
	put16(h + 2, (uint16_t)(4 + xlen + 4 + len + pad));
	put32(h + 4, STUN_MAGIC_COOKIE);
	next_tid(ts, h + 8);
	put16(h + 20, STUN_ATTR_XOR_PEER_ADDRESS);
	put16(h + 22, (uint16_t)xlen);
	put_xor_peer(h + 24, peer, h);
	put16(data - 4, STUN_ATTR_DATA);
	put16(data - 2, (uint16_t)len);
	memset(data + len, 0, pad);
	*frame_len = (size_t)(data - h) + len + pad;
	return h;
}

/* s12.7 / s12.4: ChannelData in place; padded to 4 on streams (s12.5). */
static uint8_t *chandata_header(uint8_t *data, size_t len, uint16_t number, bool stream,
				size_t *frame_len)
{
	size_t pad = stream ? (4 - len % 4) % 4 : 0;

	turn_chandata_header(data - TURN_CHANNEL_HDR_LEN, number, (uint16_t)len);
	memset(data + len, 0, pad);
	*frame_len = TURN_CHANNEL_HDR_LEN + len + pad;
	return data - TURN_CHANNEL_HDR_LEN;
}

/* s11.3: permission, then channel or Data indication. Returns the frame
 * or NULL (dropped). */
static uint8_t *wrap(struct turn_service *ts, struct turn_alloc *a, int i, size_t len,
		     size_t *frame_len)
{
	const stun_sockaddr *peer = &ts->rx_from[i];
	uint8_t *data = turn_rx_data(&ts->rx[i]);
	struct turn_addr_key pk;
	const struct turn_chan *c;
	double now = ev_now(ts->loop);

	turn_addr_key_set(&pk, peer);
	if (!turn_perm_check(&a->ps, &pk, now)) {
		drop(ts, TD_NO_PERMISSION);
		return NULL;
	}
	if (!bandwidth_ok(ts, relay_of(a), len)) {
		drop(ts, TD_BANDWIDTH);
		return NULL;
	}
	c = turn_chan_by_peer(&a->ps, &pk, now);
	if (c)
		return chandata_header(data, len, c->number, a->ft.proto != IPPROTO_UDP,
				       frame_len);
	if (len > TURN_BUF_DATA - 64) {
		drop(ts, TD_TOO_BIG);
		return NULL;
	}
	return data_ind_header(ts, data, len, peer, frame_len);
}

/* Send n frames of tx_iov to the client: one sendmmsg over UDP. */
static void to_client(struct turn_service *ts, struct turn_alloc *a, int n)
{
	struct turn_link *l = &relay_of(a)->link;
	int sent = 0;

	if (!l->send && (sent = send_gso(l->udp_fd, &l->client, ts->tx_iov, n))) {
		/* one GSO send */
	} else if (!l->send) {
		for (int j = 0; j < n; j++) {
			struct msghdr *h = &ts->tx_msg[j].msg_hdr;

			memset(h, 0, sizeof(*h));
			h->msg_name = &l->client;
			h->msg_namelen = stun_sockaddr_len(&l->client);
			h->msg_iov = &ts->tx_iov[j];
			h->msg_iovlen = 1;
		}
		sent = n ? sendmmsg(l->udp_fd, ts->tx_msg, (unsigned)n, 0) : 0;
		sent = sent < 0 ? 0 : sent;
	} else {
		/* a failed send closes the connection, and so frees a */
		while (sent < n && l->send(l->conn, ts->tx_iov[sent].iov_base,
					   ts->tx_iov[sent].iov_len) == 0)
			sent++;
	}
	for (int j = 0; j < sent; j++)
		turn_count(&ts->ctr.bytes_to_client, ts->tx_iov[j].iov_len);
	turn_count(&ts->ctr.pkts_to_client, (uint64_t)sent);
	if (sent < n)
		turn_count(&ts->ctr.dropped[TD_SEND_ERROR], (uint64_t)(n - sent));
}

/* ICMP type and code worth passing on (s11.5). */
static bool icmp_relevant(const struct sock_extended_err *ee)
{
	if (ee->ee_origin == SO_EE_ORIGIN_ICMP)
		return ee->ee_type == 3 || ee->ee_type == 11;
	if (ee->ee_origin == SO_EE_ORIGIN_ICMP6)
		return ee->ee_type >= 1 && ee->ee_type <= 3;
	return false;
}

static const struct sock_extended_err *find_ee(struct msghdr *h)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c))
		if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR) ||
		    (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR))
			return (const struct sock_extended_err *)CMSG_DATA(c);
	return NULL;
}

/* s11.5: a Data indication with XOR-PEER-ADDRESS (the destination of the
 * datagram that failed) and ICMP (type, code, error data: the MTU for
 * "fragmentation needed" / "packet too big", else 0). */
static void icmp_to_client(struct turn_service *ts, struct turn_alloc *a,
			   const stun_sockaddr *dest, const struct sock_extended_err *ee)
{
	uint8_t *data = turn_rx_data(&ts->rx[0]);
	size_t flen;
	uint8_t *h;
	struct turn_addr_key pk;

	turn_addr_key_set(&pk, dest);
	if (!turn_perm_check(&a->ps, &pk, ev_now(ts->loop)))
		return drop(ts, TD_NO_PERMISSION);
	h = data_ind_header(ts, data, 0, dest, &flen);
	/* replace the empty DATA with ICMP: reserved(2) type code data(4) */
	put16(data - 4, STUN_ATTR_ICMP);
	put16(data - 2, 8);
	put16(data, 0);
	data[2] = ee->ee_type;
	data[3] = ee->ee_code;
	put32(data + 4, (ee->ee_type == 3 && ee->ee_code == 4) || ee->ee_type == 2 ?
		       ee->ee_info : 0);
	put16(h + 2, (uint16_t)(flen - 20 + 8));
	ts->tx_iov[0].iov_base = h;
	ts->tx_iov[0].iov_len = flen + 8;
	to_client(ts, a, 1);
	turn_count(&ts->ctr.icmp_to_client, 1);
}

static void drain_errqueue(struct turn_service *ts, struct turn_alloc *a, int fd)
{
	for (int k = 0; k < TURN_BATCH; k++) {
		union {
			char buf[CMSG_SPACE(sizeof(struct sock_extended_err) + sizeof(stun_sockaddr))];
			struct cmsghdr align;
		} ctl;
		stun_sockaddr dest;
		struct iovec iov = { turn_rx_data(&ts->rx[1]), 64 };
		struct msghdr h = { .msg_name = &dest, .msg_namelen = sizeof(dest),
				    .msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
		const struct sock_extended_err *ee;

		if (recvmsg(fd, &h, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
			return;
		ee = find_ee(&h);
		if (ee && icmp_relevant(ee))
			icmp_to_client(ts, a, &dest, ee);
	}
}

static void relay_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct turn_alloc *a = w->data;
	struct turn_service *ts = relay_of(a)->ts;
	int n, out = 0;

	(void)loop;
	(void)revents;
	for (int i = 0; i < TURN_BATCH; i++) {
		ts->rx_msg[i].msg_hdr.msg_namelen = sizeof(stun_sockaddr);
		ts->rx_msg[i].msg_hdr.msg_flags = 0;
	}
	n = recvmmsg(w->fd, ts->rx_msg, TURN_BATCH, MSG_DONTWAIT, NULL);
	if (n <= 0) {
		/* woken without data: an ICMP error is queued (or was) */
		drain_errqueue(ts, a, w->fd);
		return;
	}
	for (int i = 0; i < n; i++) {
		size_t flen = 0;
		uint8_t *f;

		if (ts->rx_msg[i].msg_hdr.msg_flags & MSG_TRUNC) {
			drop(ts, TD_TOO_BIG);
			continue;
		}
		f = wrap(ts, a, i, ts->rx_msg[i].msg_len, &flen);
		if (!f)
			continue;
		ts->tx_iov[out].iov_base = f;
		ts->tx_iov[out].iov_len = flen;
		out++;
	}
	to_client(ts, a, out);
}

void turn_link_closed(struct turn_service *ts, const struct turn_link *link)
{
	struct turn_alloc *a = alloc_of_link(ts, link);

	if (!a)
		return;
	turn_count(&ts->ctr.allocs_deleted, 1);
	turn_alloc_free(ts->table, a);
}
