/* turn_client: one TURN allocation over UDP (see turn_client.h). */
#include "turn_client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "turn_frame.h"

#define PROTO_UDP 17
/* RFC 8656 s9: permissions last 300 s; s11: channels 600 s. Refresh both
 * well before (a ChannelBind refresh also refreshes the permission). */
#define PERM_REFRESH_S 240.0
#define CHAN_REFRESH_S 240.0
#define RETRY_S 10.0
#define PERM_LIFETIME_S 300.0  /* s9 */
#define CHAN_LIFETIME_S 600.0  /* s12 */
#define CHAN_REUSE_S 300.0     /* s12: wait 5 minutes after it expired */
#define CHANDATA_MAX 65535

/* A permission (keyed by the peer's IP: RFC 8656 s9, the port does not
 * count) or a channel (keyed by the peer's transport address, s12). Several
 * users (ICE sessions sharing the allocation) hold one entry: refs counts
 * them; it is refreshed while refs > 0. Nothing deletes a permission or a
 * channel on the server (s9, s12): a released permission is forgotten (it
 * expires there); a released channel stays in the table, keeping its
 * number and peer, until 5 minutes after it expired on the server (s12:
 * neither may be bound otherwise before that) or until it is held again. */
struct turn_peer {
	struct turn_client *t;
	bool used;
	stun_sockaddr addr;
	uint16_t channel;      /* 0: a permission */
	unsigned refs;
	bool confirmed;        /* installed (at least once) */
	bool busy;             /* a request is in flight */
	ev_tstamp next;        /* when to refresh */
	ev_tstamp expires;     /* the latest the server may keep it */
	uint8_t tid[STUN_TID_LEN];
	turn_done_cb done;     /* first install's callback, then NULL */
	void *done_arg;
};

struct turn_client {
	struct stun_client *sc;    /* borrowed */
	struct stun_cred *cred;    /* borrowed */
	stun_sockaddr server;
	struct turn_client_cbs cbs;
	bool allocated, alloc_busy;
	uint32_t lifetime, req_lifetime;
	bool want_v6;              /* REQUESTED-ADDRESS-FAMILY IPv6 */
	ev_tstamp alloc_next;      /* when to Refresh */
	uint8_t alloc_tid[STUN_TID_LEN];
	stun_sockaddr relayed, mapped;
	struct turn_peer peers[TURN_MAX_PEERS]; /* permissions and channels */
	uint16_t next_channel;
	double refresh_override;   /* > 0: refresh everything this often */
	ev_timer timer;
	struct turn_client_stats stats;
	uint8_t sbuf[CHANDATA_MAX + 64];
};

const char *turn_client_strerror(int status)
{
	if (status > 0)
		return stun_error_reason((uint16_t)status);
	switch (status) {
	case 0: return "ok";
	case -ETIMEDOUT: return "no answer from the TURN server";
	case -EHOSTUNREACH: return "the TURN server is unreachable (ICMP error: nothing listens there?)";
	case -EACCES: return "the server rejected the user name or password";
	case -EBADMSG: return "the server's answers failed the integrity check (wrong password?)";
	case -EPROTO: return "malformed answer from the TURN server";
	case -ECANCELED: return "cancelled";
	}
	return strerror(-status);
}

static int txn_status(const struct stun_txn_result *r)
{
	switch (r->status) {
	case STUN_TXN_SUCCESS: return 0;
	case STUN_TXN_ERROR_RESP: return r->code ? r->code : -EPROTO;
	case STUN_TXN_TIMEOUT: return -ETIMEDOUT;
	case STUN_TXN_INTEGRITY: return -EBADMSG;
	case STUN_TXN_AUTH_FAILED: return -EACCES;
	case STUN_TXN_SEND_FAILED: return r->sys_err ? -r->sys_err : -EIO;
	case STUN_TXN_UNREACHABLE: return -EHOSTUNREACH;
	case STUN_TXN_CANCELLED: return -ECANCELED;
	}
	return -EPROTO;
}

/* ---- timers ---- */

static void reschedule(struct turn_client *t)
{
	struct ev_loop *loop = stun_client_loop(t->sc);
	ev_tstamp next = 0;

	ev_timer_stop(loop, &t->timer);
	if (!t->allocated)
		return;
	next = t->alloc_next;
	for (unsigned i = 0; i < TURN_MAX_PEERS; i++)
		if (t->peers[i].refs && !t->peers[i].busy && t->peers[i].next < next)
			next = t->peers[i].next;
	ev_timer_set(&t->timer, next > ev_now(loop) ? next - ev_now(loop) : 0., 0.);
	ev_timer_start(loop, &t->timer);
}

static int request(struct turn_client *t, uint16_t method, stun_attrs_fn attrs, void *arg,
		   stun_txn_cb cb, void *cb_arg, uint8_t tid[STUN_TID_LEN])
{
	struct stun_request req = {
		.method = method,
		.dest = t->server,
		.attrs = attrs,
		.attrs_arg = arg,
		.cred = t->cred,
		.fingerprint = true,
		.cb = cb,
		.arg = cb_arg,
	};

	return stun_client_request(t->sc, &req, tid);
}

/* ---- Allocate / Refresh (RFC 8656 s7, s8) ---- */

static void allocate_attrs(struct stun_builder *b, void *arg)
{
	struct turn_client *t = arg;

	/* s7.1: REQUESTED-TRANSPORT UDP is mandatory */
	stun_build_u8(b, STUN_ATTR_REQUESTED_TRANSPORT, PROTO_UDP);
	if (t->req_lifetime)
		stun_build_u32(b, STUN_ATTR_LIFETIME, t->req_lifetime);
	/* RFC 8656 s7.1 (RFC 6156): without it the relayed address is IPv4 */
	if (t->want_v6)
		stun_build_u8(b, STUN_ATTR_REQUESTED_ADDRESS_FAMILY, STUN_FAMILY_IPV6);
}

void turn_client_set_family(struct turn_client *t, int family)
{
	t->want_v6 = family == AF_INET6;
}

static void refresh_attrs(struct stun_builder *b, void *arg)
{
	struct turn_client *t = arg;

	stun_build_u32(b, STUN_ATTR_LIFETIME, t->req_lifetime ? t->req_lifetime : t->lifetime);
}

static void dealloc_attrs(struct stun_builder *b, void *arg)
{
	(void)arg;
	stun_build_u32(b, STUN_ATTR_LIFETIME, 0); /* s8: lifetime 0 deletes */
}

/* Refresh a minute before the end, or at half time for short lifetimes. */
static ev_tstamp refresh_in(const struct turn_client *t, uint32_t lifetime)
{
	if (t->refresh_override > 0)
		return t->refresh_override;
	return lifetime > 120 ? lifetime - 60.0 : lifetime / 2.0;
}

static ev_tstamp peer_refresh_in(const struct turn_client *t, const struct turn_peer *p)
{
	if (t->refresh_override > 0)
		return t->refresh_override;
	return p->channel ? CHAN_REFRESH_S : PERM_REFRESH_S;
}

void turn_client_set_refresh(struct turn_client *t, double seconds)
{
	t->refresh_override = seconds;
}

static void allocate_cb(struct stun_client *c, const struct stun_txn_result *r, void *arg)
{
	struct turn_client *t = arg;
	int st = txn_status(r);

	(void)c;
	t->alloc_busy = false;
	if (st == -ECANCELED)
		return;
	if (!st && (!r->msg->n_xor_relayed || !stun_msg_has(r->msg, STUN_ATTR_LIFETIME)))
		st = -EPROTO; /* s7.3: both are mandatory in a success response */
	if (!st) {
		t->allocated = true;
		t->relayed = r->msg->xor_relayed[0];
		if (stun_msg_has(r->msg, STUN_ATTR_XOR_MAPPED_ADDRESS))
			t->mapped = r->msg->xor_mapped;
		t->lifetime = r->msg->lifetime;
		t->alloc_next = ev_now(stun_client_loop(t->sc)) + refresh_in(t, t->lifetime);
		reschedule(t);
	}
	if (t->cbs.allocated)
		t->cbs.allocated(t, st, t->cbs.arg);
}

static void refresh_cb(struct stun_client *c, const struct stun_txn_result *r, void *arg)
{
	struct turn_client *t = arg;
	struct ev_loop *loop = stun_client_loop(c);
	int st = txn_status(r);

	t->alloc_busy = false;
	if (st == -ECANCELED)
		return;
	if (!st) {
		t->stats.refreshes++;
		if (stun_msg_has(r->msg, STUN_ATTR_LIFETIME))
			t->lifetime = r->msg->lifetime;
		t->alloc_next = ev_now(loop) + refresh_in(t, t->lifetime);
	} else if (st == STUN_ERR_ALLOCATION_MISMATCH || st == -EACCES) {
		/* s8: 437: the allocation no longer exists */
		t->allocated = false;
		if (t->cbs.lost)
			t->cbs.lost(t, st, t->cbs.arg);
		return;
	} else {
		t->alloc_next = ev_now(loop) + RETRY_S;
	}
	reschedule(t);
}

int turn_client_allocate(struct turn_client *t, uint32_t lifetime_s)
{
	int err;

	if (t->allocated || t->alloc_busy)
		return -EALREADY;
	t->req_lifetime = lifetime_s;
	err = request(t, STUN_METHOD_ALLOCATE, allocate_attrs, t, allocate_cb, t, t->alloc_tid);
	if (!err)
		t->alloc_busy = true;
	return err;
}

/* ---- CreatePermission / ChannelBind (s9, s11) ---- */

static void peer_attrs(struct stun_builder *b, void *arg)
{
	struct turn_peer *p = arg;

	if (p->channel)
		stun_build_u16(b, STUN_ATTR_CHANNEL_NUMBER, p->channel);
	stun_build_xor_addr(b, STUN_ATTR_XOR_PEER_ADDRESS, &p->addr);
}

static void peer_cb(struct stun_client *c, const struct stun_txn_result *r, void *arg)
{
	struct turn_peer *p = arg;
	struct turn_client *t = p->t;
	int st = txn_status(r);
	turn_done_cb done = p->done;

	p->busy = false;
	if (st == -ECANCELED)
		return;
	if (!st) {
		if (p->confirmed)
			(p->channel ? t->stats.chan_refreshes++ : t->stats.perm_refreshes++);
		p->confirmed = true;
		p->next = ev_now(stun_client_loop(c)) + peer_refresh_in(t, p);
	} else {
		p->next = ev_now(stun_client_loop(c)) + RETRY_S;
	}
	p->done = NULL;
	reschedule(t);
	if (done)
		done(t, st, p->done_arg);
}

static int peer_request(struct turn_peer *p)
{
	struct turn_client *t = p->t;
	int err = request(t, p->channel ? STUN_METHOD_CHANNEL_BIND : STUN_METHOD_CREATE_PERMISSION,
			  peer_attrs, p, peer_cb, p, p->tid);

	if (err)
		return err;
	p->busy = true;
	p->expires = ev_now(stun_client_loop(t->sc)) + (p->channel ? CHAN_LIFETIME_S
								   : PERM_LIFETIME_S);
	return 0;
}

static bool same_ip(const stun_sockaddr *a, const stun_sockaddr *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	if (a->sa.sa_family == AF_INET)
		return a->in4.sin_addr.s_addr == b->in4.sin_addr.s_addr;
	return !memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, sizeof(a->in6.sin6_addr));
}

/* A channel: by transport address; a permission: by IP (s9). */
static struct turn_peer *peer_find(const struct turn_client *t, const stun_sockaddr *a,
				   bool channel)
{
	for (unsigned i = 0; i < TURN_MAX_PEERS; i++) {
		const struct turn_peer *p = &t->peers[i];

		if (!p->used || (p->channel != 0) != channel)
			continue;
		if (channel ? stun_sockaddr_equal(&p->addr, a) : same_ip(&p->addr, a))
			return (struct turn_peer *)p;
	}
	return NULL;
}

/* A released channel may be forgotten 5 minutes after the server let it
 * go (s12); a released permission at once (it only expires there). */
static bool peer_reusable(const struct turn_peer *p, ev_tstamp now)
{
	if (!p->used)
		return true;
	return !p->refs && !p->busy && p->channel && now >= p->expires + CHAN_REUSE_S;
}

static struct turn_peer *peer_slot(struct turn_client *t)
{
	ev_tstamp now = ev_now(stun_client_loop(t->sc));

	for (unsigned i = 0; i < TURN_MAX_PEERS; i++)
		if (peer_reusable(&t->peers[i], now))
			return &t->peers[i];
	return NULL;
}

static bool channel_taken(const struct turn_client *t, uint16_t ch)
{
	for (unsigned i = 0; i < TURN_MAX_PEERS; i++)
		if (t->peers[i].used && t->peers[i].channel == ch)
			return true;
	return false;
}

/* s12: a number bound to no other peer (in the table: bound, or not long
 * enough unbound), distinct per peer; 0 when all are taken. */
static uint16_t channel_pick(struct turn_client *t)
{
	unsigned span = TURN_CHANNEL_MAX - TURN_CHANNEL_MIN + 1;

	for (unsigned i = 0; i < span; i++) {
		uint16_t ch = (uint16_t)(TURN_CHANNEL_MIN + (t->next_channel - TURN_CHANNEL_MIN + i) % span);

		if (!channel_taken(t, ch)) {
			t->next_channel = (uint16_t)(TURN_CHANNEL_MIN + (ch - TURN_CHANNEL_MIN + 1) % span);
			return ch;
		}
	}
	return 0;
}

static int peer_new(struct turn_client *t, const stun_sockaddr *addr, bool channel,
		    struct turn_peer **out)
{
	struct turn_peer *p = peer_slot(t);
	uint16_t ch = 0;

	if (!p)
		return -ENOSPC;
	if (channel) {
		memset(p, 0, sizeof(*p)); /* frees its number for channel_pick */
		ch = channel_pick(t);
		if (!ch)
			return -ENOSPC;
	}
	*p = (struct turn_peer){ .t = t, .used = true, .addr = *addr, .channel = ch };
	*out = p;
	return 0;
}

/* Hold the permission or channel for addr (a reference): a new entry is
 * requested now; an existing one is shared (a released channel is
 * refreshed again, at once if it is due). Returns 0 (a request went out:
 * done will run), 1 (it was there: done will not run), or < 0 (nothing
 * held). */
static int peer_hold(struct turn_client *t, const stun_sockaddr *addr, bool channel,
		     turn_done_cb done, void *arg)
{
	struct turn_peer *p;
	int err;

	if (!t->allocated)
		return -ENOTCONN;
	p = peer_find(t, addr, channel);
	if (p) {
		if (p->refs++)
			return 1;
		if (ev_now(stun_client_loop(t->sc)) >= p->expires)
			p->confirmed = false; /* gone on the server: ChannelBind first */
		reschedule(t);
		return 1;
	}
	err = peer_new(t, addr, channel, &p);
	if (err < 0)
		return err;
	p->refs = 1;
	p->done = done;
	p->done_arg = arg;
	err = peer_request(p);
	if (err < 0)
		*p = (struct turn_peer){ 0 }; /* nothing went out: forget it */
	return err;
}

int turn_client_permit(struct turn_client *t, const stun_sockaddr *peer, turn_done_cb done,
		       void *arg)
{
	return peer_hold(t, peer, false, done, arg);
}

int turn_client_bind_channel(struct turn_client *t, const stun_sockaddr *peer,
			     turn_done_cb done, void *arg)
{
	return peer_hold(t, peer, true, done, arg);
}

void turn_client_release(struct turn_client *t, const stun_sockaddr *peer, bool channel)
{
	struct turn_peer *p = peer_find(t, peer, channel);

	if (!p || !p->refs || --p->refs)
		return;
	if (p->busy) {
		p->done = NULL;
		stun_client_cancel(t->sc, p->tid);
	}
	if (!p->channel)
		*p = (struct turn_peer){ 0 };
	reschedule(t);
}

uint16_t turn_client_channel(const struct turn_client *t, const stun_sockaddr *peer)
{
	const struct turn_peer *p = peer_find(t, peer, true);

	return p && p->refs && p->confirmed ? p->channel : 0;
}

unsigned turn_client_held(const struct turn_client *t, bool channel)
{
	unsigned n = 0;

	for (unsigned i = 0; i < TURN_MAX_PEERS; i++)
		n += t->peers[i].used && t->peers[i].refs && (t->peers[i].channel != 0) == channel;
	return n;
}

/* ---- the refresh timer ---- */

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct turn_client *t = w->data;
	ev_tstamp now = ev_now(loop);

	(void)revents;
	if (!t->allocated)
		return;
	if (!t->alloc_busy && t->alloc_next <= now) {
		if (request(t, STUN_METHOD_REFRESH, refresh_attrs, t, refresh_cb, t,
			    t->alloc_tid) == 0)
			t->alloc_busy = true;
		else
			t->alloc_next = now + RETRY_S;
	}
	for (unsigned i = 0; i < TURN_MAX_PEERS; i++) {
		struct turn_peer *p = &t->peers[i];
		if (p->refs && !p->busy && p->next <= now && peer_request(p) < 0)
			p->next = now + RETRY_S;
	}
	if (t->alloc_busy) {
		/* the Refresh callback reschedules; peers' timers wait for it */
		ev_tstamp next = now + RETRY_S;
		ev_timer_set(&t->timer, next - now, 0.);
		ev_timer_start(loop, &t->timer);
		return;
	}
	reschedule(t);
}

/* ---- data (s10, s12) ---- */

static int send_indication(struct turn_client *t, const stun_sockaddr *peer,
			   const void *data, size_t len)
{
	struct stun_builder b;
	uint8_t tid[STUN_TID_LEN];
	int n;

	if (getrandom(tid, sizeof(tid), 0) != (ssize_t)sizeof(tid))
		return -EIO;
	stun_build_init(&b, t->sbuf, sizeof(t->sbuf), STUN_METHOD_SEND, STUN_CLASS_INDICATION, tid);
	stun_build_xor_addr(&b, STUN_ATTR_XOR_PEER_ADDRESS, peer);
	stun_build_bytes(&b, STUN_ATTR_DATA, data, len);
	n = stun_build_finish(&b);
	if (n < 0)
		return n;
	t->stats.tx_send_ind++;
	return stun_client_send(t->sc, &t->server, t->sbuf, (size_t)n);
}

int turn_client_send(struct turn_client *t, const stun_sockaddr *peer, const void *data,
		     size_t len)
{
	uint16_t ch = turn_client_channel(t, peer);

	if (!t->allocated)
		return -ENOTCONN;
	if (len > CHANDATA_MAX - 64)
		return -EMSGSIZE;
	if (!ch)
		return send_indication(t, peer, data, len);
	/* s12.4: ChannelData over UDP need not be padded */
	memcpy(t->sbuf + TURN_CHANNEL_HDR_LEN, data, len);
	turn_chandata_header(t->sbuf, ch, (uint16_t)len);
	t->stats.tx_chandata++;
	return stun_client_send(t->sc, &t->server, t->sbuf, TURN_CHANNEL_HDR_LEN + len);
}

static bool input_chandata(struct turn_client *t, const uint8_t *buf, size_t len)
{
	uint16_t ch, dlen;
	const uint8_t *data;

	if (turn_chandata_parse(buf, len, &ch, &data, &dlen) < 0) {
		t->stats.rx_dropped++;
		return true;
	}
	for (unsigned i = 0; i < TURN_MAX_PEERS; i++) {
		struct turn_peer *p = &t->peers[i];
		if (p->used && p->channel == ch) {
			t->stats.rx_chandata++;
			if (t->cbs.data)
				t->cbs.data(t, &p->addr, data, dlen, true, t->cbs.arg);
			return true;
		}
	}
	t->stats.rx_dropped++; /* s12.5: unknown channel: discard */
	return true;
}

bool turn_client_input(struct turn_client *t, const uint8_t *buf, size_t len,
		       const stun_sockaddr *from, const struct stun_msg *m)
{
	if (!stun_sockaddr_equal(from, &t->server))
		return false;
	if (!m)
		return stun_demux(buf, len) == STUN_DEMUX_CHANNEL && input_chandata(t, buf, len);
	if (m->method != STUN_METHOD_DATA || m->cls != STUN_CLASS_INDICATION)
		return false;
	/* s10.4: Data indications need XOR-PEER-ADDRESS and DATA */
	if (!m->n_xor_peer || !stun_msg_has(m, STUN_ATTR_DATA)) {
		t->stats.rx_dropped++;
		return true;
	}
	t->stats.rx_data_ind++;
	if (t->cbs.data)
		t->cbs.data(t, &m->xor_peer[0], m->data.p, m->data.len, false, t->cbs.arg);
	return true;
}

/* ---- life cycle ---- */

int turn_client_new(struct stun_client *sc, const stun_sockaddr *server,
		    struct stun_cred *cred, const struct turn_client_cbs *cbs,
		    struct turn_client **out)
{
	struct turn_client *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->sc = sc;
	t->cred = cred;
	t->server = *server;
	if (cbs)
		t->cbs = *cbs;
	t->next_channel = TURN_CHANNEL_MIN;
	ev_timer_init(&t->timer, timer_cb, 0., 0.);
	t->timer.data = t;
	*out = t;
	return 0;
}

void turn_client_free(struct turn_client *t)
{
	if (!t)
		return;
	ev_timer_stop(stun_client_loop(t->sc), &t->timer);
	t->cbs.allocated = NULL;
	t->cbs.lost = NULL;
	if (t->alloc_busy)
		stun_client_cancel(t->sc, t->alloc_tid);
	for (unsigned i = 0; i < TURN_MAX_PEERS; i++) {
		t->peers[i].done = NULL;
		if (t->peers[i].busy)
			stun_client_cancel(t->sc, t->peers[i].tid);
	}
	if (t->allocated) /* best effort: nobody waits for the answer */
		request(t, STUN_METHOD_REFRESH, dealloc_attrs, NULL, NULL, NULL, NULL);
	free(t);
}

bool turn_client_is_allocated(const struct turn_client *t)
{
	return t->allocated;
}

const stun_sockaddr *turn_client_relayed(const struct turn_client *t)
{
	return &t->relayed;
}

const stun_sockaddr *turn_client_mapped(const struct turn_client *t)
{
	return &t->mapped;
}

uint32_t turn_client_lifetime(const struct turn_client *t)
{
	return t->lifetime;
}

const struct turn_client_stats *turn_client_stats(const struct turn_client *t)
{
	return &t->stats;
}

const stun_sockaddr *turn_client_server(const struct turn_client *t)
{
	return &t->server;
}
