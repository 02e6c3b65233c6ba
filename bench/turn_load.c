/* turn_load: a TURN (RFC 8656) load generator over UDP, IPv4.
 *
 * Every client is one UDP socket connected to the server, so one 5-tuple and
 * one allocation (s2.2). Each client allocates with long-term credentials:
 * an unauthenticated Allocate, the 401 with REALM and NONCE, then the
 * Allocate with USERNAME, REALM, NONCE and MESSAGE-INTEGRITY (RFC 8489
 * s9.2). Responses are parsed with proto/ and their MESSAGE-INTEGRITY is
 * verified. Three modes:
 *
 *   relay   -n clients allocate, then ChannelBind (-k chan) or
 *           CreatePermission (-k send) towards a peer socket of this
 *           process on loopback; then each keeps up to -w packets of -l
 *           payload bytes outstanding (or paced to -R packets/s in all) as
 *           ChannelData or Send indications for -d seconds. The peer echoes
 *           every packet to the relayed address it came from (-E: sink, no
 *           echo), so the server relays both ways: ChannelData or Data
 *           indications come back. Counted: sent, received by the peer,
 *           echoed, received back; loss each way; rates; payload Mbit/s.
 *   allocs  -n sockets each loop: Allocate -> 401 -> authenticated Allocate
 *           -> Refresh LIFETIME 0 (deleted), for -d seconds or -N
 *           allocations: allocations per second with authentication.
 *   hold    create allocations up to each count of -K (e.g. 1000,10000),
 *           -w transactions outstanding; after each step print a
 *           "turn_load hold_step" line and hold them -H seconds (the driver
 *           reads the server's RSS meanwhile); then delete them all.
 *
 *   turn_load -s ADDR:PORT -u USER:PASS [-m relay|allocs|hold] [-n clients]
 *             [-k chan|send] [-l payload] [-w window] [-b batch] [-R pps]
 *             [-d seconds] [-N max-allocs] [-K counts] [-H hold-seconds]
 *             [-t loss-timeout-ms] [-E] [-L label]
 *
 * Requests are retransmitted after 500 ms, 3 tries in all (RFC 8489 s6.2.1
 * asks for more; loopback needs fewer), then the client counts as failed.
 * One line of key=value results on stdout; exit 0 when the mode did its
 * work (relayed packets came back / allocations were made), else 3. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench_stun.h"
#include "bench_util.h"
#include "stun_auth.h"
#include "stun_msg.h"
#include "turn_frame.h"

#define BATCH_MAX 64
#define PKT_MAX 1500
#define PAYLOAD_MIN 16 /* client, slot, sequence */
#define SEND_HDR 36    /* STUN header + XOR-PEER-ADDRESS + DATA header */
#define REQ_MAX 512
#define RTO_NS 500000000ull
#define TRIES 3
#define CLIENTS_MAX 20000
#define SETUP_SECONDS 30.0
#define EXPIRE_EVERY_NS 10000000ull
#define PEER_ID UINT32_MAX

enum mode { M_RELAY, M_ALLOCS, M_HOLD };

enum cstate {
	C_IDLE,     /* nothing outstanding (not yet started, or held) */
	C_ALLOC1,   /* unauthenticated Allocate sent, 401 expected */
	C_ALLOC2,   /* authenticated Allocate sent */
	C_BIND,     /* ChannelBind or CreatePermission sent */
	C_READY,    /* relay mode: relaying */
	C_DELETE,   /* Refresh LIFETIME 0 sent */
	C_FAILED,
};

struct opts {
	union bs_addr server;
	const char *user, *pass, *label;
	enum mode mode;
	bool channel, sink;
	unsigned clients, payload, window, batch, timeout_ms;
	double seconds, rate, hold_secs;
	uint64_t max_allocs;
	unsigned steps[8], n_steps;
};

struct slot {
	uint64_t seq; /* 0: free */
	uint64_t sent_ns;
};

struct client {
	int fd;
	enum cstate st;
	uint8_t tries;
	bool allocated;
	uint16_t channel;
	uint64_t sent_ns;
	size_t req_len;
	uint8_t req[REQ_MAX];
	stun_sockaddr relayed;
	uint8_t nonce_len;
	char nonce[STUN_NONCE_MAX]; /* stateless nonces name the client (5-tuple) */
	/* relay mode */
	struct slot *slots;
	uint32_t *free_list;
	unsigned nfree;
	uint64_t next_seq;
	uint8_t *tmpl; /* Send indication template (header, peer, DATA) */
};

struct counters {
	uint64_t sent, peer_rx, peer_tx, client_rx, invalid, peer_invalid, late;
	uint64_t timeouts, send_errors, rtt_ns_sum;
	uint64_t allocs, deleted, failed, retransmits, stale, err_codes;
	uint16_t last_error;
};

struct load {
	struct opts o;
	struct client *c;
	unsigned n_open; /* clients whose socket exists */
	int ep, peer_fd;
	stun_sockaddr peer;
	char realm[256];
	size_t realm_len;
	uint8_t key[STUN_KEY_MAX];
	size_t key_len;
	uint64_t rng;
	uint32_t src_next;
	struct counters k;
	uint64_t in_run_peer_rx, in_run_client_rx; /* while sending */
	unsigned busy; /* transactions outstanding */
	struct mmsghdr tx[BATCH_MAX], rx[BATCH_MAX];
	struct iovec tx_iov[BATCH_MAX], rx_iov[BATCH_MAX];
	stun_sockaddr rx_name[BATCH_MAX];
	uint32_t tx_slot[BATCH_MAX];
	uint8_t tx_buf[BATCH_MAX][PKT_MAX];
	uint8_t rx_buf[BATCH_MAX][PKT_MAX];
};

static uint64_t rnd(struct load *l)
{
	l->rng ^= l->rng << 13;
	l->rng ^= l->rng >> 7;
	l->rng ^= l->rng << 17;
	return l->rng;
}

/* ---- sockets ---------------------------------------------------------- */

static int watch(struct load *l, int fd, uint32_t id)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = id };

	return epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/* Each new client socket from the next source address of 127.1.0.0/16
 * (loopback): no 5-tuple repeats in allocs mode while a server may still
 * hold state of a deleted allocation (coturn keeps a session about a second
 * and answers 437 to the same 5-tuple), and no client takes a port of
 * 127.0.0.1 that a server wants for a relayed address in hold mode. */
static int bind_rotating(struct load *l, int fd)
{
	stun_sockaddr a = { .in4 = { .sin_family = AF_INET } };
	uint32_t n = l->src_next++ % 0xFFFE + 1;

	a.in4.sin_addr.s_addr = htonl(0x7F010000u | n);
	return bind(fd, &a.sa, sizeof(a.in4)) < 0 ? -errno : 0;
}

static int client_open(struct load *l, uint32_t id)
{
	struct client *c = &l->c[id];
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	c->fd = fd;
	if (fd < 0)
		return -errno;
	if (l->n_open < id + 1)
		l->n_open = id + 1;
	if (l->o.mode == M_RELAY)
		bench_big_rcvbuf(fd, 1 << 20);
	if (bind_rotating(l, fd) < 0)
		return -errno;
	if (connect(fd, &l->o.server.sa, bs_addr_len(&l->o.server)) < 0)
		return -errno;
	return watch(l, fd, id);
}

static int peer_open(struct load *l)
{
	socklen_t len = sizeof(l->peer);

	l->peer_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->peer_fd < 0)
		return -errno;
	bench_big_rcvbuf(l->peer_fd, 4 << 20);
	memset(&l->peer, 0, sizeof(l->peer));
	l->peer.in4.sin_family = AF_INET;
	l->peer.in4.sin_addr = l->o.server.in4.sin_addr; /* loopback beside the server */
	if (bind(l->peer_fd, &l->peer.sa, sizeof(l->peer.in4)) < 0 ||
	    getsockname(l->peer_fd, &l->peer.sa, &len) < 0)
		return -errno;
	return watch(l, l->peer_fd, PEER_ID);
}

/* ---- requests --------------------------------------------------------- */

static void new_tid(struct load *l, uint8_t tid[STUN_TID_LEN])
{
	uint64_t a = rnd(l), b = rnd(l);

	memcpy(tid, &a, 8);
	memcpy(tid + 8, &b, 4);
}

static void add_auth(struct load *l, struct client *c, struct stun_builder *b)
{
	stun_build_str(b, STUN_ATTR_USERNAME, l->o.user);
	stun_build_bytes(b, STUN_ATTR_REALM, l->realm, l->realm_len);
	stun_build_bytes(b, STUN_ATTR_NONCE, c->nonce, c->nonce_len);
	stun_build_mi(b, l->key, l->key_len);
}

static int transmit(struct load *l, struct client *c)
{
	if (send(c->fd, c->req, c->req_len, 0) < 0) {
		l->k.send_errors++;
		return -errno;
	}
	c->sent_ns = bench_now_ns();
	return 0;
}

/* Build the request of state st (RFC 8656 s7.1, s9.1, s11.1, s12.1, s8)
 * into c->req and send it. */
static int request(struct load *l, uint32_t id, enum cstate st)
{
	struct client *c = &l->c[id];
	struct stun_builder b;
	uint8_t tid[STUN_TID_LEN];
	uint16_t method = STUN_METHOD_ALLOCATE;

	if (st == C_BIND)
		method = l->o.channel ? STUN_METHOD_CHANNEL_BIND : STUN_METHOD_CREATE_PERMISSION;
	else if (st == C_DELETE)
		method = STUN_METHOD_REFRESH;
	new_tid(l, tid);
	stun_build_init(&b, c->req, sizeof(c->req), method, STUN_CLASS_REQUEST, tid);
	if (st == C_ALLOC1 || st == C_ALLOC2)
		stun_build_u8(&b, STUN_ATTR_REQUESTED_TRANSPORT, 17);
	if (st == C_BIND && l->o.channel)
		stun_build_u16(&b, STUN_ATTR_CHANNEL_NUMBER, c->channel);
	if (st == C_BIND)
		stun_build_xor_addr(&b, STUN_ATTR_XOR_PEER_ADDRESS, &l->peer);
	if (st == C_DELETE)
		stun_build_u32(&b, STUN_ATTR_LIFETIME, 0);
	if (st != C_ALLOC1)
		add_auth(l, c, &b);
	int n = stun_build_finish(&b);
	if (n < 0)
		return n;
	c->req_len = (size_t)n;
	c->st = st;
	c->tries = 1;
	l->busy++;
	return transmit(l, c);
}

/* Finished a transaction: the client goes to st (no request out). */
static void settle(struct load *l, struct client *c, enum cstate st)
{
	if (c->st != C_IDLE && c->st != C_READY && c->st != C_FAILED)
		l->busy--;
	c->st = st;
}

static void fail(struct load *l, struct client *c)
{
	settle(l, c, C_FAILED);
	l->k.failed++;
}

/* ---- responses -------------------------------------------------------- */

/* The 401/438 gave a realm and nonce: keep them, and the key for the realm. */
static int take_challenge(struct load *l, struct client *c, const struct stun_msg *m)
{
	if (!stun_msg_has(m, STUN_ATTR_NONCE) || m->nonce.len >= sizeof(c->nonce))
		return -1;
	memcpy(c->nonce, m->nonce.p, m->nonce.len);
	c->nonce_len = (uint8_t)m->nonce.len;
	if (!stun_msg_has(m, STUN_ATTR_REALM) || m->realm.len >= sizeof(l->realm))
		return -1;
	if (l->key_len && m->realm.len == l->realm_len &&
	    memcmp(m->realm.p, l->realm, l->realm_len) == 0)
		return 0;
	memcpy(l->realm, m->realm.p, m->realm.len);
	l->realm[m->realm.len] = '\0';
	l->realm_len = m->realm.len;
	int n = stun_key_long_term(STUN_PWALG_MD5, l->o.user, l->realm, l->o.pass, l->key);
	if (n < 0)
		return -1;
	l->key_len = (size_t)n;
	return 0;
}

static bool next_alloc_wanted(const struct load *l, uint64_t now, uint64_t end)
{
	if (bench_stopped || now >= end)
		return false;
	return !l->o.max_allocs || l->k.allocs + l->busy < l->o.max_allocs;
}

static void allocated(struct load *l, uint32_t id, const struct stun_msg *m)
{
	struct client *c = &l->c[id];

	if (!m->n_xor_relayed) {
		fail(l, c);
		return;
	}
	c->relayed = m->xor_relayed[0];
	c->allocated = true;
	l->k.allocs++;
	l->busy--;
	if (l->o.mode == M_RELAY)
		request(l, id, C_BIND);
	else if (l->o.mode == M_ALLOCS)
		request(l, id, C_DELETE);
	else
		c->st = C_IDLE;
}

/* allocs mode: the next allocation from a new socket, so a new 5-tuple
 * (a server may keep state of the old one for a while, coturn answers 437). */
static void reallocate(struct load *l, uint32_t id)
{
	close(l->c[id].fd); /* leaves the epoll set too */
	l->c[id].fd = -1;
	if (client_open(l, id) < 0 || request(l, id, C_ALLOC1) < 0)
		fail(l, &l->c[id]);
}

static void on_success(struct load *l, uint32_t id, const struct stun_msg *m,
		       uint64_t now, uint64_t end)
{
	struct client *c = &l->c[id];

	switch (c->st) {
	case C_ALLOC2:
		allocated(l, id, m);
		break;
	case C_BIND:
		settle(l, c, C_READY);
		break;
	case C_DELETE:
		c->allocated = false;
		l->k.deleted++;
		settle(l, c, C_IDLE);
		if (l->o.mode == M_ALLOCS && next_alloc_wanted(l, now, end))
			reallocate(l, id);
		break;
	default:
		l->k.invalid++;
	}
}

static void on_error(struct load *l, uint32_t id, const struct stun_msg *m)
{
	struct client *c = &l->c[id];
	uint16_t code = m->error.code;
	enum cstate st = c->st;

	if (code == STUN_ERR_UNAUTHORIZED && st == C_ALLOC1 && take_challenge(l, c, m) == 0) {
		l->busy--;
		request(l, id, C_ALLOC2);
		return;
	}
	if (code == STUN_ERR_STALE_NONCE && st != C_ALLOC1 && take_challenge(l, c, m) == 0) {
		l->k.stale++;
		l->busy--;
		request(l, id, st); /* s9.2.5 of RFC 8489: retry with the new nonce */
		return;
	}
	l->k.err_codes++;
	l->k.last_error = code;
	fail(l, c);
}

static bool response_ok(struct load *l, struct client *c, struct stun_msg *m,
			const uint8_t *buf, size_t len)
{
	if (stun_msg_parse(m, buf, len) < 0 || m->classic)
		return false;
	if (c->st == C_IDLE || c->st == C_READY || c->st == C_FAILED)
		return false;
	if (memcmp(m->tid, c->req + 8, STUN_TID_LEN) != 0)
		return false;
	if (m->cls != STUN_CLASS_SUCCESS && m->cls != STUN_CLASS_ERROR)
		return false;
	/* Success responses to authenticated requests carry integrity
	 * (RFC 8489 s9.2.4): check it with our key. */
	if (m->cls == STUN_CLASS_SUCCESS && c->st != C_ALLOC1 &&
	    stun_msg_verify_mi(m, l->key, l->key_len) != 0)
		return false;
	return true;
}

static void on_control(struct load *l, uint32_t id, const uint8_t *buf, size_t len,
		       uint64_t now, uint64_t end)
{
	struct client *c = &l->c[id];
	struct stun_msg m;

	if (!response_ok(l, c, &m, buf, len)) {
		if (c->st != C_READY)
			l->k.late++; /* a retransmission's second answer, or noise */
		return;
	}
	if (m.cls == STUN_CLASS_SUCCESS)
		on_success(l, id, &m, now, end);
	else
		on_error(l, id, &m);
}

/* ---- relayed packets -------------------------------------------------- */

static void slot_release(struct client *c, uint32_t idx)
{
	c->slots[idx].seq = 0;
	c->free_list[c->nfree++] = idx;
}

/* The payload: client id, slot, sequence, then filler. */
static bool payload_match(struct load *l, uint32_t id, const uint8_t *p, size_t len,
			  uint32_t *slot, uint64_t *seq)
{
	if (len != l->o.payload || bs_get32(p) != id)
		return false;
	*slot = bs_get32(p + 4);
	*seq = bs_get64(p + 8);
	return *slot < l->o.window && *seq && *seq < l->c[id].next_seq;
}

static void closed_loop(struct load *l, struct client *c, uint32_t slot, uint64_t seq,
			uint64_t now)
{
	if (c->slots[slot].seq != seq) {
		l->k.late++; /* after its loss timeout */
		return;
	}
	l->k.rtt_ns_sum += now - c->slots[slot].sent_ns;
	slot_release(c, slot);
}

/* A packet back at client id: ChannelData (s12.6) or a Data indication
 * (s11.6) from our peer. */
static void on_relayed(struct load *l, uint32_t id, const uint8_t *buf, size_t len,
		       uint64_t now)
{
	struct client *c = &l->c[id];
	const uint8_t *data;
	uint16_t ch, dlen;
	uint32_t slot;
	uint64_t seq;
	struct stun_msg m;

	if (l->o.channel) {
		if (turn_chandata_parse(buf, len, &ch, &data, &dlen) < 0 || ch != c->channel)
			goto invalid;
	} else {
		if (stun_msg_parse(&m, buf, len) < 0 || m.method != STUN_METHOD_DATA ||
		    m.cls != STUN_CLASS_INDICATION || !m.n_xor_peer ||
		    !stun_sockaddr_equal(&m.xor_peer[0], &l->peer) ||
		    !stun_msg_has(&m, STUN_ATTR_DATA))
			goto invalid;
		data = m.data.p;
		dlen = m.data.len;
	}
	if (!payload_match(l, id, data, dlen, &slot, &seq))
		goto invalid;
	l->k.client_rx++;
	if (!l->o.sink)
		closed_loop(l, c, slot, seq, now);
	return;
invalid:
	l->k.invalid++;
}

static void on_client_packet(struct load *l, uint32_t id, const uint8_t *buf, size_t len,
			     uint64_t now, uint64_t end)
{
	if (l->c[id].st == C_READY && stun_demux(buf, len) == STUN_DEMUX_CHANNEL)
		on_relayed(l, id, buf, len, now);
	else if (l->c[id].st == C_READY && len >= 2 && bs_get16(buf) == 0x0017)
		on_relayed(l, id, buf, len, now); /* Data indication */
	else
		on_control(l, id, buf, len, now, end);
}

/* The peer got a batch: check each came from its client's relayed address,
 * then echo each back to where it came from (unless a sink). */
static void peer_batch(struct load *l, unsigned n, uint64_t now)
{
	unsigned out = 0;

	for (unsigned i = 0; i < n; i++) {
		const uint8_t *p = l->rx_buf[i];
		uint32_t id = l->rx[i].msg_len >= 4 ? bs_get32(p) : UINT32_MAX;
		uint32_t slot;
		uint64_t seq;

		if (id >= l->n_open || !payload_match(l, id, p, l->rx[i].msg_len, &slot, &seq) ||
		    !stun_sockaddr_equal(&l->rx_name[i], &l->c[id].relayed)) {
			l->k.peer_invalid++;
			continue;
		}
		l->k.peer_rx++;
		if (l->o.sink) {
			closed_loop(l, &l->c[id], slot, seq, now);
			continue;
		}
		l->tx_iov[out].iov_base = l->rx_buf[i];
		l->tx_iov[out].iov_len = l->rx[i].msg_len;
		l->tx[out].msg_hdr.msg_name = &l->rx_name[i];
		l->tx[out].msg_hdr.msg_namelen = sizeof(l->rx_name[i].in4);
		out++;
	}
	if (!out)
		return;
	int r = sendmmsg(l->peer_fd, l->tx, out, 0);
	if (r < 0)
		l->k.send_errors++;
	else
		l->k.peer_tx += (unsigned)r;
	for (unsigned i = 0; i < out; i++) { /* back to connected-socket sends */
		l->tx[i].msg_hdr.msg_name = NULL;
		l->tx[i].msg_hdr.msg_namelen = 0;
		l->tx_iov[i].iov_base = l->tx_buf[i];
	}
}

static void read_socket(struct load *l, uint32_t id, uint64_t now, uint64_t end)
{
	int fd = id == PEER_ID ? l->peer_fd : l->c[id].fd;

	for (int round = 0; round < 4; round++) {
		for (unsigned i = 0; i < l->o.batch; i++)
			l->rx[i].msg_hdr.msg_namelen = sizeof(l->rx_name[i]);
		int n = recvmmsg(fd, l->rx, l->o.batch, MSG_DONTWAIT, NULL);
		if (n <= 0)
			return; /* EAGAIN, or an ICMP error on a connected socket */
		if (id == PEER_ID) {
			peer_batch(l, (unsigned)n, now);
		} else {
			for (int i = 0; i < n; i++)
				on_client_packet(l, id, l->rx_buf[i], l->rx[i].msg_len, now, end);
		}
		if ((unsigned)n < l->o.batch)
			return;
	}
}

/* ---- sending relayed packets ------------------------------------------ */

static int make_template(struct load *l, struct client *c)
{
	struct stun_builder b;
	uint8_t tid[STUN_TID_LEN];

	c->tmpl = calloc(1, SEND_HDR + l->o.payload);
	if (!c->tmpl)
		return -ENOMEM;
	new_tid(l, tid);
	stun_build_init(&b, c->tmpl, SEND_HDR + l->o.payload, STUN_METHOD_SEND,
			STUN_CLASS_INDICATION, tid);
	stun_build_xor_addr(&b, STUN_ATTR_XOR_PEER_ADDRESS, &l->peer);
	uint8_t *d = stun_build_reserve(&b, STUN_ATTR_DATA, l->o.payload);
	if (d)
		memset(d, 0xA5, l->o.payload);
	return stun_build_finish(&b) == (int)(SEND_HDR + l->o.payload) ? 0 : -EINVAL;
}

/* One packet into tx_buf[i]: ChannelData (s12.4) or a Send indication
 * (s11.1; the IPv4 XOR-PEER-ADDRESS does not depend on the transaction ID,
 * so the template's ID can change per packet). Returns its length. */
static size_t build_packet(struct load *l, uint32_t id, unsigned i, uint32_t slot,
			   uint64_t seq)
{
	struct client *c = &l->c[id];
	uint8_t *m = l->tx_buf[i], *p;
	size_t hdr;

	if (l->o.channel) {
		hdr = turn_chandata_header(m, c->channel, (uint16_t)l->o.payload);
		memset(m + hdr + PAYLOAD_MIN, 0xA5, l->o.payload - PAYLOAD_MIN);
	} else {
		hdr = SEND_HDR;
		memcpy(m, c->tmpl, SEND_HDR + l->o.payload);
		bs_put64(m + 12, seq);
	}
	p = m + hdr;
	bs_put32(p, id);
	bs_put32(p + 4, slot);
	bs_put64(p + 8, seq);
	return hdr + l->o.payload;
}

static unsigned client_send(struct load *l, uint32_t id, uint64_t budget, uint64_t now)
{
	struct client *c = &l->c[id];
	uint64_t n = c->nfree < l->o.batch ? c->nfree : l->o.batch;

	if (budget < n)
		n = budget;
	for (unsigned i = 0; i < n; i++) {
		uint32_t slot = c->free_list[--c->nfree];
		uint64_t seq = c->next_seq++;

		c->slots[slot] = (struct slot){ .seq = seq, .sent_ns = now };
		l->tx_slot[i] = slot;
		l->tx_iov[i].iov_len = build_packet(l, id, i, slot, seq);
	}
	int r = n ? sendmmsg(c->fd, l->tx, (unsigned)n, 0) : 0;
	if (r < 0) {
		if (errno != EAGAIN && errno != EINTR)
			l->k.send_errors++;
		r = 0;
	}
	for (unsigned i = (unsigned)r; i < n; i++)
		slot_release(c, l->tx_slot[i]);
	l->k.sent += (unsigned)r;
	return (unsigned)r;
}

/* Packets allowed now: unlimited, or what the rate -R allows by now. */
static uint64_t budget(const struct load *l, uint64_t start, uint64_t now)
{
	if (l->o.rate <= 0)
		return UINT64_MAX;
	uint64_t due = (uint64_t)(l->o.rate * (double)(now - start) / 1e9) + 1;
	return due > l->k.sent ? due - l->k.sent : 0;
}

static unsigned send_all(struct load *l, uint64_t start, uint64_t now)
{
	unsigned sent = 0;

	for (uint32_t id = 0; id < l->n_open; id++) {
		if (l->c[id].st != C_READY)
			continue;
		uint64_t b = budget(l, start, now);
		if (!b)
			break;
		sent += client_send(l, id, b, now);
	}
	return sent;
}

/* ---- timers ----------------------------------------------------------- */

/* Retransmit requests unanswered after RTO_NS; fail after TRIES. */
static void retransmit(struct load *l, uint64_t now)
{
	for (uint32_t id = 0; id < l->n_open; id++) {
		struct client *c = &l->c[id];

		if (c->st == C_IDLE || c->st == C_READY || c->st == C_FAILED ||
		    now - c->sent_ns < RTO_NS)
			continue;
		if (c->tries >= TRIES) {
			l->k.timeouts++;
			fail(l, c);
			continue;
		}
		c->tries++;
		l->k.retransmits++;
		transmit(l, c);
	}
}

static uint64_t outstanding(const struct load *l)
{
	uint64_t n = 0;

	for (uint32_t id = 0; id < l->n_open; id++)
		if (l->c[id].st == C_READY)
			n += l->o.window - l->c[id].nfree;
	return n;
}

static void expire_slots(struct load *l, uint64_t now)
{
	uint64_t timeout = (uint64_t)l->o.timeout_ms * 1000000ull;

	for (uint32_t id = 0; id < l->n_open; id++) {
		struct client *c = &l->c[id];

		if (c->st != C_READY)
			continue;
		for (uint32_t s = 0; s < l->o.window; s++)
			if (c->slots[s].seq && now - c->slots[s].sent_ns >= timeout)
				slot_release(c, s);
	}
}

/* ---- the event loop --------------------------------------------------- */

/* Wait up to wait_ms for readable sockets and handle them. */
static unsigned poll_once(struct load *l, int wait_ms, uint64_t end)
{
	struct epoll_event ev[256];
	int n = epoll_wait(l->ep, ev, 256, wait_ms);
	uint64_t now = bench_now_ns();

	for (int i = 0; i < n; i++)
		read_socket(l, ev[i].data.u32, now, end);
	return n > 0 ? (unsigned)n : 0;
}

/* Run control transactions until none is outstanding or the deadline. */
static void settle_all(struct load *l, uint64_t deadline)
{
	uint64_t last = bench_now_ns();

	while (l->busy && !bench_stopped && bench_now_ns() < deadline) {
		poll_once(l, 5, 0);
		if (bench_now_ns() - last >= EXPIRE_EVERY_NS) {
			last = bench_now_ns();
			retransmit(l, last);
		}
	}
}

/* Allocate for clients [from, to) with at most window transactions
 * outstanding, bounded by the deadline. */
static void allocate_range(struct load *l, uint32_t from, uint32_t to, uint64_t deadline)
{
	uint64_t last = bench_now_ns();

	for (uint32_t id = from; id < to && !bench_stopped && bench_now_ns() < deadline;) {
		while (id < to && l->busy < l->o.window) {
			if (client_open(l, id) < 0 || request(l, id, C_ALLOC1) < 0)
				fail(l, &l->c[id]);
			id++;
		}
		poll_once(l, 1, 0);
		if (bench_now_ns() - last >= EXPIRE_EVERY_NS) {
			last = bench_now_ns();
			retransmit(l, last);
		}
	}
	settle_all(l, deadline);
}

/* Delete every allocation still held (Refresh LIFETIME 0, s7.4). */
static void delete_all(struct load *l, uint64_t deadline)
{
	uint64_t last = bench_now_ns();

	for (uint32_t id = 0; id < l->n_open && !bench_stopped && bench_now_ns() < deadline;) {
		while (id < l->n_open && l->busy < l->o.window) {
			struct client *c = &l->c[id++];

			if (!c->allocated || (c->st != C_IDLE && c->st != C_READY))
				continue;
			c->st = C_IDLE;
			request(l, (uint32_t)(c - l->c), C_DELETE);
		}
		poll_once(l, 1, 0);
		if (bench_now_ns() - last >= EXPIRE_EVERY_NS) {
			last = bench_now_ns();
			retransmit(l, last);
		}
	}
	settle_all(l, deadline);
}

static uint64_t deadline_in(double seconds)
{
	return bench_now_ns() + (uint64_t)(seconds * 1e9);
}

/* ---- modes ------------------------------------------------------------ */

static int relay_setup(struct load *l)
{
	int err = peer_open(l);

	if (err < 0)
		return err;
	for (uint32_t id = 0; id < l->o.clients; id++) {
		struct client *c = &l->c[id];

		c->channel = (uint16_t)(TURN_CHANNEL_MIN + id % 0x1000);
		c->slots = calloc(l->o.window, sizeof(*c->slots));
		c->free_list = calloc(l->o.window, sizeof(*c->free_list));
		if (!c->slots || !c->free_list)
			return -ENOMEM;
		for (unsigned i = 0; i < l->o.window; i++)
			c->free_list[i] = l->o.window - 1 - i;
		c->nfree = l->o.window;
		c->next_seq = 1;
	}
	allocate_range(l, 0, l->o.clients, deadline_in(SETUP_SECONDS));
	for (uint32_t id = 0; id < l->n_open; id++)
		if (l->c[id].st == C_READY && !l->o.channel && make_template(l, &l->c[id]) < 0)
			return -ENOMEM;
	return 0;
}

static uint64_t ready_clients(const struct load *l)
{
	uint64_t n = 0;

	for (uint32_t id = 0; id < l->n_open; id++)
		n += l->c[id].st == C_READY;
	return n;
}

/* Send for the duration, then wait for the last packets up to the loss
 * timeout. Returns the sending time in ns. */
static uint64_t relay_run(struct load *l)
{
	uint64_t timeout = (uint64_t)l->o.timeout_ms * 1000000ull;
	uint64_t start = bench_now_ns(), now = start, last = start, send_end = 0;
	uint64_t end = start + (uint64_t)(l->o.seconds * 1e9);
	bool sending = true;

	for (;;) {
		if (sending && (now >= end || bench_stopped)) {
			sending = false;
			send_end = now;
			l->in_run_peer_rx = l->k.peer_rx;
			l->in_run_client_rx = l->k.client_rx;
		}
		if (!sending && (!outstanding(l) || now - send_end >= timeout))
			break;
		unsigned sent = sending ? send_all(l, start, now) : 0;
		poll_once(l, sent ? 0 : 1, end);
		now = bench_now_ns();
		if (now - last >= EXPIRE_EVERY_NS) {
			expire_slots(l, now);
			last = now;
		}
	}
	return send_end - start;
}

static void report_relay(struct load *l, uint64_t send_ns, uint64_t ready)
{
	const struct counters *k = &l->k;
	double s = (double)send_ns / 1e9;
	double out_pps = s > 0 ? (double)l->in_run_peer_rx / s : 0;
	double in_pps = s > 0 ? (double)l->in_run_client_rx / s : 0;
	uint64_t backs = l->o.sink ? k->peer_rx : k->client_rx;
	char srv[64];

	printf("turn_load mode=relay label=%s server=%s kind=%s payload=%u clients=%llu "
	       "ready=%llu window=%u rate=%.0f seconds=%.3f sent=%llu peer_rx=%llu "
	       "peer_tx=%llu client_rx=%llu lost_out=%llu lost_in=%llu invalid=%llu "
	       "peer_invalid=%llu late=%llu send_errors=%llu failed=%llu relayed=%llu "
	       "out_pps=%.0f in_pps=%.0f pps=%.0f mbps=%.1f rtt_us=%.1f\n",
	       l->o.label, bs_addr_str(&l->o.server, srv, sizeof(srv)),
	       l->o.channel ? "chan" : "send", l->o.payload, (unsigned long long)l->o.clients,
	       (unsigned long long)ready, l->o.window, l->o.rate, s,
	       (unsigned long long)k->sent, (unsigned long long)k->peer_rx,
	       (unsigned long long)k->peer_tx, (unsigned long long)k->client_rx,
	       (unsigned long long)(k->sent - k->peer_rx),
	       (unsigned long long)(k->peer_tx - k->client_rx), (unsigned long long)k->invalid,
	       (unsigned long long)k->peer_invalid, (unsigned long long)k->late,
	       (unsigned long long)k->send_errors, (unsigned long long)k->failed,
	       (unsigned long long)(k->peer_rx + k->client_rx), out_pps, in_pps,
	       out_pps + in_pps, (out_pps + in_pps) * l->o.payload * 8 / 1e6,
	       backs ? (double)k->rtt_ns_sum / (double)backs / 1e3 : 0);
}

static int mode_relay(struct load *l)
{
	int err = relay_setup(l);

	if (err < 0) {
		fprintf(stderr, "turn_load: relay setup: %s\n", strerror(-err));
		return 1;
	}
	uint64_t ready = ready_clients(l);
	if (!ready) {
		fprintf(stderr, "turn_load: no client got ready (failed=%llu timeouts=%llu "
			"last error %u)\n", (unsigned long long)l->k.failed,
			(unsigned long long)l->k.timeouts, l->k.last_error);
		report_relay(l, 0, 0);
		return 3;
	}
	uint64_t send_ns = relay_run(l);
	report_relay(l, send_ns, ready);
	delete_all(l, deadline_in(10));
	return (l->o.sink ? l->k.peer_rx : l->k.client_rx) ? 0 : 3;
}

static void report_allocs(const struct load *l, const char *mode, double s, uint64_t in_run)
{
	const struct counters *k = &l->k;
	char srv[64];

	printf("turn_load mode=%s label=%s server=%s clients=%u seconds=%.3f allocs=%llu "
	       "deleted=%llu failed=%llu timeouts=%llu retransmits=%llu stale=%llu "
	       "errors=%llu last_error=%u late=%llu aps=%.0f\n",
	       mode, l->o.label, bs_addr_str(&l->o.server, srv, sizeof(srv)), l->o.clients, s,
	       (unsigned long long)k->allocs, (unsigned long long)k->deleted,
	       (unsigned long long)k->failed, (unsigned long long)k->timeouts,
	       (unsigned long long)k->retransmits, (unsigned long long)k->stale,
	       (unsigned long long)k->err_codes, k->last_error, (unsigned long long)k->late,
	       s > 0 ? (double)in_run / s : 0);
	fflush(stdout);
}

/* Every client loops allocate -> delete until the time or count is up;
 * then the last transactions finish. */
static int mode_allocs(struct load *l)
{
	uint64_t start = bench_now_ns(), end = start + (uint64_t)(l->o.seconds * 1e9);
	uint64_t last = start;

	for (uint32_t id = 0; id < l->o.clients && next_alloc_wanted(l, start, end); id++)
		if (client_open(l, id) < 0 || request(l, id, C_ALLOC1) < 0)
			fail(l, &l->c[id]);
	while (l->busy && !bench_stopped && bench_now_ns() < end) {
		poll_once(l, 1, end);
		if (bench_now_ns() - last >= EXPIRE_EVERY_NS) {
			last = bench_now_ns();
			retransmit(l, last);
		}
	}
	double s = (double)(bench_now_ns() - start) / 1e9;
	uint64_t in_run = l->k.allocs;
	settle_all(l, deadline_in(5));
	delete_all(l, deadline_in(5));
	report_allocs(l, "allocs", s, in_run);
	return l->k.allocs ? 0 : 3;
}

static uint64_t held(const struct load *l)
{
	uint64_t n = 0;

	for (uint32_t id = 0; id < l->n_open; id++)
		n += l->c[id].allocated;
	return n;
}

static int mode_hold(struct load *l)
{
	uint64_t start = bench_now_ns(), deadline = deadline_in(l->o.seconds);
	uint32_t from = 0;

	for (unsigned i = 0; i < l->o.n_steps && !bench_stopped; i++) {
		uint64_t t0 = bench_now_ns();

		allocate_range(l, from, l->o.steps[i], deadline);
		from = l->n_open;
		printf("turn_load hold_step label=%s want=%u allocs=%llu failed=%llu "
		       "timeouts=%llu last_error=%u seconds=%.3f\n", l->o.label, l->o.steps[i],
		       (unsigned long long)held(l), (unsigned long long)l->k.failed,
		       (unsigned long long)l->k.timeouts, l->k.last_error,
		       (double)(bench_now_ns() - t0) / 1e9);
		fflush(stdout);
		usleep((useconds_t)(l->o.hold_secs * 1e6)); /* the driver reads RSS */
	}
	uint64_t most = held(l);
	delete_all(l, deadline_in(30));
	report_allocs(l, "hold", (double)(bench_now_ns() - start) / 1e9, l->k.allocs);
	return most ? 0 : 3;
}

/* ---- options ---------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
		"usage: turn_load -s ADDR:PORT -u USER:PASS [-m relay|allocs|hold] [-L label]\n"
		"  relay:  [-n clients(4)] [-k chan|send] [-l payload(100)] [-w window(32)]\n"
		"          [-b batch(32)] [-R packets/s (0 = max)] [-d seconds(5)]\n"
		"          [-t loss-timeout-ms(500)] [-E peer is a sink]\n"
		"  allocs: [-n sockets(64)] [-d seconds(5)] [-N max-allocs]\n"
		"  hold:   [-K counts(1000,10000)] [-w outstanding(256)] [-H hold-seconds(1)]\n"
		"          [-d seconds to create them(60)]\n");
}

static int parse_steps(struct opts *o, char *s)
{
	o->n_steps = 0;
	for (char *t = strtok(s, ","); t; t = strtok(NULL, ",")) {
		long v = strtol(t, NULL, 10);
		if (o->n_steps == 8 || v <= 0 || v > CLIENTS_MAX ||
		    (o->n_steps && (unsigned)v <= o->steps[o->n_steps - 1]))
			return -1;
		o->steps[o->n_steps++] = (unsigned)v;
	}
	return o->n_steps ? 0 : -1;
}

static int parse_mode(struct opts *o, const char *s)
{
	if (!strcmp(s, "relay"))
		o->mode = M_RELAY;
	else if (!strcmp(s, "allocs"))
		o->mode = M_ALLOCS;
	else if (!strcmp(s, "hold"))
		o->mode = M_HOLD;
	else
		return -1;
	return 0;
}

static int parse_user(struct opts *o, char *s)
{
	char *colon = strchr(s, ':');

	if (!colon || colon == s)
		return -1;
	*colon = '\0';
	o->user = s;
	o->pass = colon + 1;
	return 0;
}

/* Mode defaults for what -n / -w / -d did not set. */
static void mode_defaults(struct opts *o, bool n_set, bool w_set, bool d_set)
{
	if (!n_set)
		o->clients = o->mode == M_ALLOCS ? 64 : 4;
	if (!w_set)
		o->window = o->mode == M_RELAY ? 32 : 256;
	if (!d_set)
		o->seconds = o->mode == M_HOLD ? 60 : 5;
	if (o->mode == M_HOLD)
		o->clients = o->steps[o->n_steps - 1];
}

static bool opts_valid(const struct opts *o)
{
	return o->server.sa.sa_family == AF_INET && o->user && o->clients >= 1 &&
	       o->clients <= CLIENTS_MAX && o->payload >= PAYLOAD_MIN &&
	       o->payload <= PKT_MAX - SEND_HDR && o->window >= 1 && o->window <= 65536 &&
	       o->batch >= 1 && o->batch <= BATCH_MAX && o->seconds > 0 &&
	       o->seconds <= 250 && /* permissions last 300 s (s9) */
	       o->timeout_ms >= 1 && o->rate >= 0 && o->hold_secs >= 0 && o->hold_secs <= 60;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static char steps[] = "1000,10000";
	bool n_set = false, w_set = false, d_set = false;
	int c;

	*o = (struct opts){ .label = "-", .channel = true, .payload = 100, .batch = 32,
			    .timeout_ms = 500, .hold_secs = 1 };
	parse_steps(o, steps);
	while ((c = getopt(argc, argv, "s:u:m:n:k:l:w:b:R:d:N:K:H:t:EL:h")) != -1) {
		switch (c) {
		case 's': if (bs_addr_parse(&o->server, optarg) < 0) return -1; break;
		case 'u': if (parse_user(o, optarg) < 0) return -1; break;
		case 'm': if (parse_mode(o, optarg) < 0) return -1; break;
		case 'n': o->clients = (unsigned)atoi(optarg); n_set = true; break;
		case 'k': o->channel = strcmp(optarg, "send") != 0; break;
		case 'l': o->payload = (unsigned)atoi(optarg); break;
		case 'w': o->window = (unsigned)atoi(optarg); w_set = true; break;
		case 'b': o->batch = (unsigned)atoi(optarg); break;
		case 'R': o->rate = atof(optarg); break;
		case 'd': o->seconds = atof(optarg); d_set = true; break;
		case 'N': o->max_allocs = strtoull(optarg, NULL, 10); break;
		case 'K': if (parse_steps(o, optarg) < 0) return -1; break;
		case 'H': o->hold_secs = atof(optarg); break;
		case 't': o->timeout_ms = (unsigned)atoi(optarg); break;
		case 'E': o->sink = true; break;
		case 'L': o->label = optarg; break;
		default: return -1;
		}
	}
	mode_defaults(o, n_set, w_set, d_set);
	return opts_valid(o) ? 0 : -1;
}

/* ---- main ------------------------------------------------------------- */

static void setup_vectors(struct load *l)
{
	bench_mmsg_setup(l->tx, l->tx_iov, l->tx_buf[0], PKT_MAX, 0, BATCH_MAX);
	bench_mmsg_setup(l->rx, l->rx_iov, l->rx_buf[0], PKT_MAX, PKT_MAX, BATCH_MAX);
	for (unsigned i = 0; i < BATCH_MAX; i++)
		l->rx[i].msg_hdr.msg_name = &l->rx_name[i];
}

/* Sockets: one per client, the peer, epoll; ask for the hard limit. */
static int setup(struct load *l)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < l->o.clients + 16ull) {
		fprintf(stderr, "turn_load: %u clients need %u descriptors; the limit is %llu\n",
			l->o.clients, l->o.clients + 16, (unsigned long long)rl.rlim_cur);
		return -EMFILE;
	}
	if (getrandom(&l->rng, sizeof(l->rng), 0) != sizeof(l->rng) || !l->rng)
		l->rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
	l->c = calloc(l->o.clients, sizeof(*l->c));
	l->ep = epoll_create1(EPOLL_CLOEXEC);
	if (!l->c || l->ep < 0)
		return -ENOMEM;
	setup_vectors(l);
	return 0;
}

static void teardown(struct load *l)
{
	for (uint32_t id = 0; id < l->n_open; id++) {
		if (l->c[id].fd >= 0)
			close(l->c[id].fd);
		free(l->c[id].slots);
		free(l->c[id].free_list);
		free(l->c[id].tmpl);
	}
	free(l->c);
	if (l->peer_fd > 0)
		close(l->peer_fd);
	if (l->ep >= 0)
		close(l->ep);
}

int main(int argc, char **argv)
{
	static struct load l;
	int rc;

	if (parse_args(argc, argv, &l.o) < 0) {
		usage();
		return 2;
	}
	bench_catch_stop();
	l.ep = -1;
	if (setup(&l) < 0) {
		teardown(&l);
		return 1;
	}
	if (l.o.mode == M_RELAY)
		rc = mode_relay(&l);
	else if (l.o.mode == M_ALLOCS)
		rc = mode_allocs(&l);
	else
		rc = mode_hold(&l);
	fflush(stdout);
	teardown(&l);
	return rc;
}
