/* turn_tcp: TCP allocations (RFC 6062): a listening relayed socket, peer
 * data connections opened by Connect (s5.2) or accepted from peers (s5.3),
 * ConnectionAttempt indications, and ConnectionBind (s5.4) which turns a
 * client's stream connection into a raw data connection spliced to its
 * peer. Connections are per worker: a ConnectionBind that reaches another
 * worker is handed to the one named in its CONNECTION-ID (tcp_handoff.c). */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listener.h"
#include "turn_internal.h"

#define TCP_BIND_TIMEOUT 30.0     /* s5.2 / s5.3: 30 seconds */
#define TCP_CONNECT_TIMEOUT 30.0  /* s5.2: at least 30 seconds */
#define TCP_BUF_MAX (256 * 1024)  /* buffered per direction before closing */
#define TCP_READ 16384

enum tc_state { TC_CONNECTING, TC_PENDING, TC_BOUND };

/* A peer data connection. */
struct turn_tcp_conn {
	struct turn_service *ts;
	struct turn_alloc *a;        /* borrowed: the allocation it belongs to */
	struct turn_tcp_conn *next;  /* in ts->tcp_conns */
	uint32_t id;                 /* CONNECTION-ID */
	enum tc_state state;
	int fd;
	stun_sockaddr peer;
	ev_io rio, wio;
	ev_timer timer;              /* connect / bind timeout; flush after bind */
	struct stream_conn *client;  /* borrowed: the client data connection */
	uint8_t *buf;                /* to the client before the bind; to the
				      * peer when it cannot take more */
	size_t len;
	/* to answer the Connect when the connection is made (s5.2) */
	uint8_t tid[STUN_TID_LEN];
	uint8_t key[STUN_KEY_MAX];
	uint8_t key_len;
	bool sign_mi, sign_mi256, fingerprint;
};

static struct turn_relay *relay_of(struct turn_alloc *a)
{
	return turn_alloc_ext(a);
}

/* ---- connections -------------------------------------------------------- */

static void tc_unlink(struct turn_tcp_conn *tc)
{
	for (struct turn_tcp_conn **pp = &tc->ts->tcp_conns; *pp; pp = &(*pp)->next) {
		if (*pp == tc) {
			*pp = tc->next;
			return;
		}
	}
}

/* Close both sides (s5.5). */
static void tc_close(struct turn_tcp_conn *tc)
{
	struct ev_loop *loop = tc->ts->loop;
	struct stream_conn *client = tc->client;

	tc_unlink(tc);
	ev_io_stop(loop, &tc->rio);
	ev_io_stop(loop, &tc->wio);
	ev_timer_stop(loop, &tc->timer);
	close(tc->fd);
	free(tc->buf);
	free(tc);
	if (client) {
		client->raw = NULL; /* its close must not come back here */
		stream_conn_close(client);
	}
}

static struct turn_tcp_conn *tc_find(struct turn_service *ts, uint32_t id)
{
	for (struct turn_tcp_conn *tc = ts->tcp_conns; tc; tc = tc->next)
		if (tc->id == id)
			return tc;
	return NULL;
}

static bool tc_exists(struct turn_service *ts, struct turn_alloc *a, const stun_sockaddr *peer)
{
	for (struct turn_tcp_conn *tc = ts->tcp_conns; tc; tc = tc->next)
		if (tc->a == a && stun_sockaddr_equal(&tc->peer, peer))
			return true;
	return false;
}

/* RFC 6062 leaves the number of data connections open; we bound them per
 * allocation, and those not yet bound (a peer's connection waits up to 30 s
 * for its ConnectionBind, s5.3) more tightly. 0, or the limit reached. */
static int tc_limit(struct turn_service *ts, struct turn_alloc *a)
{
	unsigned n = 0, pending = 0;

	for (struct turn_tcp_conn *tc = ts->tcp_conns; tc; tc = tc->next) {
		if (tc->a != a)
			continue;
		n++;
		pending += tc->state != TC_BOUND;
	}
	if (n >= TURN_TCP_CONNS_PER_ALLOC) {
		turn_count(&ts->ctr.limited[TL_TCP_CONNS_PER_ALLOC], 1);
		return -ENOSPC;
	}
	if (pending >= TURN_TCP_PENDING_PER_ALLOC) {
		turn_count(&ts->ctr.limited[TL_TCP_PENDING_PER_ALLOC], 1);
		return -ENOSPC;
	}
	return 0;
}

static int buf_add(struct turn_tcp_conn *tc, const uint8_t *p, size_t n)
{
	uint8_t *nb;

	if (tc->len + n > TCP_BUF_MAX)
		return -ENOBUFS;
	nb = realloc(tc->buf, tc->len + n);
	if (!nb)
		return -ENOMEM;
	memcpy(nb + tc->len, p, n);
	tc->buf = nb;
	tc->len += n;
	return 0;
}

static void tc_timeout(struct ev_loop *loop, ev_timer *t, int revents);
static void tc_readable(struct ev_loop *loop, ev_io *w, int revents);
static void tc_writable(struct ev_loop *loop, ev_io *w, int revents);

static struct turn_tcp_conn *tc_new(struct turn_service *ts, struct turn_alloc *a, int fd,
				    const stun_sockaddr *peer, enum tc_state st)
{
	struct turn_tcp_conn *tc = calloc(1, sizeof(*tc));

	if (!tc)
		return NULL;
	tc->ts = ts;
	tc->a = a;
	tc->fd = fd;
	tc->peer = *peer;
	tc->state = st;
	/* the low byte names this worker (turn_dispatch.c hand_off) */
	do
		tc->id = (ts->next_conn_id++ << 8) | ts->worker_id;
	while (!tc->id || tc_find(ts, tc->id));
	ev_io_init(&tc->rio, tc_readable, fd, EV_READ);
	ev_io_init(&tc->wio, tc_writable, fd, EV_WRITE);
	ev_timer_init(&tc->timer, tc_timeout, st == TC_CONNECTING ? TCP_CONNECT_TIMEOUT
								  : TCP_BIND_TIMEOUT, 0.);
	tc->rio.data = tc->wio.data = tc->timer.data = tc;
	ev_timer_start(ts->loop, &tc->timer);
	tc->next = ts->tcp_conns;
	ts->tcp_conns = tc;
	return tc;
}

/* ---- messages on the control connection ----------------------------------- */

static int control_send(struct turn_alloc *a, const uint8_t *buf, size_t len)
{
	struct turn_link *l = &relay_of(a)->link;
	return l->send ? l->send(l->conn, buf, len) : -ENOTCONN;
}

/* The Connect response, once the connection is made or has failed (s5.2). */
static void answer_connect(struct turn_tcp_conn *tc, uint16_t code)
{
	uint8_t out[256];
	struct stun_builder b;
	int len;

	stun_build_init(&b, out, sizeof(out), STUN_METHOD_CONNECT,
			code ? STUN_CLASS_ERROR : STUN_CLASS_SUCCESS, tc->tid);
	if (code)
		stun_build_error(&b, code, NULL);
	else
		stun_build_u32(&b, STUN_ATTR_CONNECTION_ID, tc->id);
	if (tc->sign_mi)
		stun_build_mi(&b, tc->key, tc->key_len);
	if (tc->sign_mi256)
		stun_build_mi256(&b, tc->key, tc->key_len);
	if (tc->fingerprint)
		stun_build_fingerprint(&b);
	len = stun_build_finish(&b);
	if (len > 0)
		control_send(tc->a, out, (size_t)len);
}

/* s5.3: a ConnectionAttempt indication with XOR-PEER-ADDRESS and
 * CONNECTION-ID. */
static int send_attempt(struct turn_tcp_conn *tc)
{
	uint8_t out[128], tid[STUN_TID_LEN];
	struct stun_builder b;
	int len;

	memcpy(tid, &tc->id, sizeof(tc->id));
	memcpy(tid + 4, &tc->ts->tid_seq, 8);
	stun_build_init(&b, out, sizeof(out), STUN_METHOD_CONNECTION_ATTEMPT,
			STUN_CLASS_INDICATION, tid);
	stun_build_xor_addr(&b, STUN_ATTR_XOR_PEER_ADDRESS, &tc->peer);
	stun_build_u32(&b, STUN_ATTR_CONNECTION_ID, tc->id);
	stun_build_fingerprint(&b);
	len = stun_build_finish(&b);
	return len > 0 ? control_send(tc->a, out, (size_t)len) : -EINVAL;
}

/* ---- the data path ---------------------------------------------------------- */

static void tc_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct turn_tcp_conn *tc = t->data;

	(void)loop;
	(void)revents;
	if (tc->state == TC_BOUND) {
		/* just bound: what the peer sent before goes first (s5.4) */
		if (tc->len && stream_conn_send(tc->client, tc->buf, tc->len))
			return; /* the client is gone, and tc with it */
		tc->len = 0;
		ev_io_start(tc->ts->loop, &tc->rio);
		return;
	}
	if (tc->state == TC_CONNECTING)
		answer_connect(tc, STUN_ERR_CONNECTION_FAILURE);
	tc_close(tc); /* no ConnectionBind within 30 s */
}

/* Peer -> client: as-is (s5.4); before the bind, buffered (s5.2/5.3). */
static void tc_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct turn_tcp_conn *tc = w->data;
	uint8_t buf[TCP_READ];
	ssize_t n;

	(void)loop;
	(void)revents;
	n = recv(tc->fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		tc_close(tc);
		return;
	}
	turn_count(&tc->ts->ctr.pkts_to_client, 1);
	turn_count(&tc->ts->ctr.bytes_to_client, (uint64_t)n);
	if (tc->state == TC_BOUND) {
		stream_conn_send(tc->client, buf, (size_t)n); /* may close both */
		return;
	}
	if (buf_add(tc, buf, (size_t)n))
		ev_io_stop(tc->ts->loop, &tc->rio); /* the peer waits (TCP window) */
}

/* Connect completed (s5.2), or the peer can take buffered client data. */
static void tc_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct turn_tcp_conn *tc = w->data;
	int err = 0;
	socklen_t el = sizeof(err);
	ssize_t n;

	(void)revents;
	if (tc->state == TC_CONNECTING) {
		ev_io_stop(loop, &tc->wio);
		getsockopt(tc->fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err) {
			answer_connect(tc, STUN_ERR_CONNECTION_FAILURE);
			tc_close(tc);
			return;
		}
		tc->state = TC_PENDING;
		ev_timer_stop(loop, &tc->timer);
		ev_timer_set(&tc->timer, TCP_BIND_TIMEOUT, 0.);
		ev_timer_start(loop, &tc->timer);
		ev_io_start(loop, &tc->rio);
		answer_connect(tc, 0);
		return;
	}
	n = send(tc->fd, tc->buf, tc->len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n < 0) {
		tc_close(tc);
		return;
	}
	memmove(tc->buf, tc->buf + n, tc->len - (size_t)n);
	tc->len -= (size_t)n;
	if (!tc->len)
		ev_io_stop(loop, &tc->wio);
}

/* Client -> peer: as-is (s5.4). */
static void client_raw(void *arg, const uint8_t *buf, size_t len)
{
	struct turn_tcp_conn *tc = arg;
	ssize_t n = 0;

	turn_count(&tc->ts->ctr.pkts_to_peer, 1);
	turn_count(&tc->ts->ctr.bytes_to_peer, len);
	if (!tc->len) {
		n = send(tc->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno != EAGAIN) {
			tc_close(tc);
			return;
		}
		if (n < 0)
			n = 0;
	}
	if ((size_t)n == len)
		return;
	if (buf_add(tc, buf + n, len - (size_t)n)) {
		tc_close(tc);
		return;
	}
	ev_io_start(tc->ts->loop, &tc->wio);
}

void turn_tcp_client_closed(void *conn_arg)
{
	struct turn_tcp_conn *tc = conn_arg;

	tc->client = NULL;
	tc_close(tc); /* s5.5: the peer data connection goes too */
}

/* ---- the relayed listening socket -------------------------------------------- */

static int tcp_socket(const stun_sockaddr *addr)
{
	int one = 1, fd = socket(addr->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	/* the listener and outgoing connections share the relayed address */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (addr->sa.sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, &addr->sa, stun_sockaddr_len(addr)) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* s5.3: accept; without a permission close at once; else announce it. */
static void relay_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct turn_alloc *a = w->data;
	struct turn_service *ts = relay_of(a)->ts;
	stun_sockaddr peer;
	socklen_t pl = sizeof(peer);
	struct turn_addr_key pk;
	struct turn_tcp_conn *tc;
	int fd;

	(void)revents;
	fd = accept4(w->fd, &peer.sa, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	turn_addr_key_set(&pk, &peer);
	if (!turn_perm_check(&a->ps, &pk, ev_now(loop))) {
		turn_count(&ts->ctr.dropped[TD_NO_PERMISSION], 1);
		close(fd);
		return;
	}
	if (tc_limit(ts, a)) {
		close(fd);
		return;
	}
	tc = tc_new(ts, a, fd, &peer, TC_PENDING);
	if (!tc) {
		close(fd);
		return;
	}
	/* data from the peer is buffered until the bind */
	ev_io_start(loop, &tc->rio);
	if (send_attempt(tc))
		tc_close(tc);
}

int turn_tcp_listen(struct turn_service *ts, struct turn_alloc *a, const stun_sockaddr *addr)
{
	struct turn_relay *r = relay_of(a);
	int fd = tcp_socket(addr);

	if (fd < 0)
		return fd;
	if (listen(fd, 64) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	ev_io_init(&r->io[0], relay_accept, fd, EV_READ);
	r->io[0].data = a;
	ev_io_start(ts->loop, &r->io[0]);
	turn_addr_key_set(&a->relayed[0], addr);
	a->n_relayed = 1;
	return 0;
}

void turn_tcp_release(struct turn_service *ts, struct turn_alloc *a)
{
	struct turn_tcp_conn *tc = ts->tcp_conns, *next;

	for (; tc; tc = next) {
		next = tc->next;
		if (tc->a == a)
			tc_close(tc); /* s5.5: the allocation expired */
	}
}

/* ---- the requests -------------------------------------------------------------- */

static void keep_signer(struct turn_tcp_conn *tc, const struct turn_req *r)
{
	memcpy(tc->tid, r->m->tid, STUN_TID_LEN);
	tc->fingerprint = stun_msg_has(r->m, STUN_ATTR_FINGERPRINT);
	if (!r->authed)
		return;
	memcpy(tc->key, r->ar.key, r->ar.key_len);
	tc->key_len = (uint8_t)r->ar.key_len;
	tc->sign_mi = r->ar.sign_mi;
	tc->sign_mi256 = r->ar.sign_mi256;
}

/* RFC 6062 s5.2, after the allocation was found (437 otherwise). */
int turn_tcp_connect(struct turn_req *r, struct turn_alloc *a)
{
	const stun_sockaddr *peer = &r->m->xor_peer[0];
	struct turn_tcp_conn *tc;
	stun_sockaddr local;
	int fd;

	if (a->transport != IPPROTO_TCP || !r->m->n_xor_peer)
		return STUN_ERR_BAD_REQUEST;
	if (!a->n_relayed || a->relayed[0].family != peer->sa.sa_family)
		return STUN_ERR_PEER_ADDRESS_FAMILY;
	/* one connection per peer transport address, pending or active: 446 */
	if (tc_exists(r->ts, a, peer))
		return STUN_ERR_CONNECTION_EXISTS;
	/* forbidden by local policy: 403 */
	if (turn_peer_check(r->ts, peer))
		return STUN_ERR_FORBIDDEN;
	/* too many data connections on this allocation: 508 */
	if (tc_limit(r->ts, a))
		return STUN_ERR_INSUFFICIENT_CAPACITY;
	/* from the relayed transport address */
	turn_addr_key_to_sa(&a->relayed[0], &local);
	fd = tcp_socket(&local);
	if (fd < 0)
		return STUN_ERR_CONNECTION_FAILURE;
	if (connect(fd, &peer->sa, stun_sockaddr_len(peer)) < 0 && errno != EINPROGRESS) {
		close(fd);
		return STUN_ERR_CONNECTION_FAILURE;
	}
	tc = tc_new(r->ts, a, fd, peer, TC_CONNECTING);
	if (!tc) {
		close(fd);
		return STUN_ERR_INSUFFICIENT_CAPACITY;
	}
	keep_signer(tc, r);
	ev_io_start(r->ts->loop, &tc->wio);
	return TURN_ANSWER_LATER;
}

/* RFC 6062 s5.4 */
int turn_tcp_connection_bind(struct turn_req *r)
{
	struct turn_tcp_conn *tc;
	struct stream_conn *c = r->link->stream;
	size_t len = 0;
	const char *name;

	/* on TCP or TLS only (TLS: not yet) */
	if (r->link->proto != IPPROTO_TCP || !c)
		return STUN_ERR_BAD_REQUEST;
	/* a CONNECTION-ID naming a pending connection */
	tc = stun_msg_has(r->m, STUN_ATTR_CONNECTION_ID) ? tc_find(r->ts, r->m->connection_id)
							 : NULL;
	if (!tc || tc->state != TC_PENDING)
		return STUN_ERR_BAD_REQUEST;
	/* RFC 8656 s5: the allocation's user only */
	if (r->authed && tc->a->user) {
		name = turn_user_name(tc->a->user, &len);
		if (len != r->ar.username_len || memcmp(name, r->ar.username, len))
			return STUN_ERR_WRONG_CREDENTIALS;
	}
	tc->state = TC_BOUND;
	tc->client = c;
	c->raw = client_raw;
	c->raw_arg = tc;
	/* the success response goes first; then, from the loop, the data the
	 * peer sent meanwhile and the relaying itself (tc_timeout) */
	ev_io_stop(r->ts->loop, &tc->rio);
	ev_timer_stop(r->ts->loop, &tc->timer);
	ev_timer_set(&tc->timer, 0., 0.);
	ev_timer_start(r->ts->loop, &tc->timer);
	return 0;
}
