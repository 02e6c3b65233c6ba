/* rdv_service: the rendezvous methods (docs/PROTOCOL.md s4). */
#include "rdv_service.h"

#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "auth.h"
#include "log.h"
#include "rdv_proto.h"
#include "rendezvous.h"
#include "tls.h"
#include "turn.h"
#include "turn_alloc.h"
#include "txcache.h"

#define RDV_MSG_MAX 2048       /* an Offer or RdvConnect response: 16
				* candidates of at most 64 bytes, ufrag, pwd */
#define RDV_TXCACHE_ENTRIES 1024

struct rdv_service {
	struct rdv_registry *reg;
	struct rdv_worker *workers[RDV_WORKERS_MAX]; /* by worker id */
};

/* An Offer to write on a connection another worker owns. */
struct rdv_mail {
	struct rdv_mail *next;
	char id[RDV_ID_MAX + 1];
	uint64_t gen;            /* the registration it was meant for */
	size_t len;
	uint8_t buf[];
};

/* One RdvConnect in progress, owned by the worker that received it. */
struct rdv_pending {
	struct rdv_worker *rw;
	struct rdv_pending *prev, *next;
	int slot;                       /* in the offer index; -1 once done */
	uint8_t offer_id[RDV_OFFER_ID_LEN]; /* = the Offer's transaction ID */

	/* the connecting peer and how to answer it */
	uint8_t tid[STUN_TID_LEN];
	bool fingerprint, authed;
	struct auth_result ar;          /* signs the response; wiped on free */
	int tp, laddr;
	stun_sockaddr peer;
	void *conn;                     /* stream_conn or tls_sess (borrowed);
					 * NULL over UDP, and once it closed */

	/* the registered peer */
	struct rdv_reg target;
	uint8_t offer[RDV_MSG_MAX];
	size_t offer_len;
	unsigned sends;

	ev_timer timer;                 /* retransmit / give up / linger */
	bool done;
	uint8_t resp[RDV_MSG_MAX];
	size_t resp_len;
};

/* Per-worker counters (single writer: the worker), read by the metrics page. */
enum rdv_counter {
	RC_REGISTERED, RC_REFRESHED, RC_DELETED, RC_CONNECTS, RC_OFFERS_SENT,
	RC_OFFERS_RESENT, RC_OFFERS_HANDED_OVER, RC_ANSWERED, RC_DECLINED, RC_TIMEOUTS,
	RC_REFUSED, RC_COUNT
};

static const char *const counter_name[RC_COUNT] = {
	"stund_rdv_registered_total", "stund_rdv_refreshed_total", "stund_rdv_deleted_total",
	"stund_rdv_connects_total", "stund_rdv_offers_sent_total",
	"stund_rdv_offers_retransmitted_total", "stund_rdv_offers_handed_over_total",
	"stund_rdv_answered_total", "stund_rdv_declined_total", "stund_rdv_timeouts_total",
	"stund_rdv_refused_total",
};

struct rdv_worker {
	_Atomic uint64_t ctr[RC_COUNT];
	struct worker *w;
	struct rdv_service *svc;
	ev_async wake;
	struct rdv_pending *pending;
	unsigned n_pending;
	struct txcache *tx;
	pthread_mutex_t mbox_lock;
	struct rdv_mail *mbox;
};

/* One request being handled. */
struct rdv_req {
	struct worker *w;
	struct rdv_worker *rw;
	const struct stun_msg *m;
	const struct stun_in *in;
	struct stun_out *out;
	struct stun_builder b;
	double now;
	bool authed;
	struct auth_result ar;
	const char *user;
	struct rdv_msg rdv;
};

/* ---- process-wide -------------------------------------------------------- */

int rdv_service_setup(struct stund_shared *sh, const struct config *cfg, char *err,
		      size_t errlen)
{
	struct rdv_service *s = calloc(1, sizeof(*s));

	if (s)
		s->reg = rdv_registry_new(cfg->rdv_max_ids, cfg->rdv_user_quota);
	if (!s || !s->reg) {
		free(s);
		snprintf(err, errlen, "rendezvous registry: out of memory");
		return -ENOMEM;
	}
	sh->rdv = s;
	return 0;
}

void rdv_service_teardown(struct stund_shared *sh)
{
	if (!sh->rdv)
		return;
	rdv_registry_free(sh->rdv->reg);
	free(sh->rdv);
	sh->rdv = NULL;
}

/* ---- sending --------------------------------------------------------------- */

static void send_udp(struct worker *w, int laddr, const stun_sockaddr *to, const uint8_t *buf,
		     size_t len)
{
	int fd = w->udp[laddr].fd;

	if (fd < 0 || sendto(fd, buf, len, MSG_DONTWAIT, &to->sa, stun_sockaddr_len(to)) < 0) {
		metrics_drop(&w->metrics, DROP_SEND_ERROR);
		return;
	}
	METRIC_INC(w->metrics.tx_packets);
	METRIC_ADD(w->metrics.tx_bytes, len);
}

/* TCP and TLS deliver; UDP and DTLS need retransmissions. */
static bool reliable(int tp)
{
	return tp == TP_TCP || tp == TP_TLS;
}

/* Write on a stream connection or TLS/DTLS session this worker owns. */
static void send_on(int tp, void *conn, const uint8_t *buf, size_t len)
{
	if (tp == TP_TCP)
		stream_conn_send(conn, buf, len);
	else if (tp == TP_TLS || tp == TP_DTLS)
		tls_sess_send(conn, buf, len);
}

/* The flow of registration id if it is still the one of generation gen
 * and this worker owns it (only the owner closes its connections and
 * sessions: the pointer is good until we return to the loop). */
static bool reg_flow(struct rdv_worker *rw, const char *id, uint64_t gen, struct rdv_flow *out)
{
	struct rdv_reg cur;

	if (rdv_registry_get(rw->svc->reg, id, ev_now(rw->w->loop), &cur))
		return false;
	if (cur.gen != gen || cur.flow.worker != rw->w->id || !cur.flow.conn)
		return false;
	*out = cur.flow;
	return true;
}

static void count(struct rdv_worker *rw, enum rdv_counter c)
{
	atomic_fetch_add_explicit(&rw->ctr[c], 1, memory_order_relaxed);
}

static void post_mail(struct rdv_worker *to, const struct rdv_reg *t, const uint8_t *buf,
		      size_t len)
{
	struct rdv_mail *m = malloc(sizeof(*m) + len);

	if (!m)
		return;
	snprintf(m->id, sizeof(m->id), "%s", t->id);
	m->gen = t->gen;
	m->len = len;
	memcpy(m->buf, buf, len);
	log_msg(LOG_DEBUG, "rendezvous: offer for %s handed to worker %d", t->id, to->w->id);
	pthread_mutex_lock(&to->mbox_lock);
	m->next = to->mbox;
	to->mbox = m;
	pthread_mutex_unlock(&to->mbox_lock);
	ev_async_send(to->w->loop, &to->wake);
}

static void send_offer(struct rdv_pending *p)
{
	struct rdv_worker *rw = p->rw, *owner;
	const struct rdv_flow *f = &p->target.flow;
	struct rdv_flow cur;

	p->sends++;
	count(rw, p->sends > 1 ? RC_OFFERS_RESENT : RC_OFFERS_SENT);
	if (f->tp == TP_UDP) {
		/* every worker's socket for this address has the same 5-tuple */
		send_udp(rw->w, f->laddr, &f->peer, p->offer, p->offer_len);
		return;
	}
	if (f->worker == rw->w->id) {
		if (reg_flow(rw, p->target.id, p->target.gen, &cur))
			send_on(cur.tp, cur.conn, p->offer, p->offer_len);
		return;
	}
	owner = f->worker >= 0 && f->worker < RDV_WORKERS_MAX ? rw->svc->workers[f->worker] : NULL;
	if (owner) {
		count(rw, RC_OFFERS_HANDED_OVER);
		post_mail(owner, &p->target, p->offer, p->offer_len);
	}
}

static void send_response(struct rdv_pending *p)
{
	if (p->tp == TP_UDP)
		send_udp(p->rw->w, p->laddr, &p->peer, p->resp, p->resp_len);
	else if (p->conn)
		send_on(p->tp, p->conn, p->resp, p->resp_len);
}

/* ---- pending RdvConnect ------------------------------------------------------ */

static void pending_free(struct rdv_pending *p)
{
	struct rdv_worker *rw = p->rw;

	ev_timer_stop(rw->w->loop, &p->timer);
	rdv_offer_remove(rw->svc->reg, p->slot);
	if (p->prev)
		p->prev->next = p->next;
	else
		rw->pending = p->next;
	if (p->next)
		p->next->prev = p->prev;
	rw->n_pending--;
	auth_result_wipe(&p->ar);
	memset(p->target.key, 0, sizeof(p->target.key));
	free(p);
}

/* The RdvConnect response (s4.3): the answer, 480 or 408. */
static int build_final(struct rdv_pending *p, enum rdv_offer_state st, const struct rdv_msg *ans)
{
	struct stun_builder b;
	uint16_t code = st == RDV_OFFER_DECLINED ? RDV_ERR_DECLINED : RDV_ERR_PEER_TIMEOUT;
	bool ok = st == RDV_OFFER_ANSWERED;
	const struct config *cfg = p->rw->w->cfg;

	stun_build_init(&b, p->resp, sizeof(p->resp), RDV_METHOD_CONNECT,
			ok ? STUN_CLASS_SUCCESS : STUN_CLASS_ERROR, p->tid);
	if (ok) {
		rdv_build_id(&b, p->target.id);
		stun_build_xor_addr(&b, STUN_ATTR_XOR_PEER_ADDRESS, &p->target.flow.peer);
		stun_build_xor_addr(&b, STUN_ATTR_XOR_MAPPED_ADDRESS, &p->peer);
		rdv_build_session(&b, ans);
	} else {
		stun_build_error(&b, code, rdv_error_reason(code));
		metrics_error(&p->rw->w->metrics, code);
	}
	if (!cfg->no_software_attribute)
		stun_build_str(&b, STUN_ATTR_SOFTWARE, STUND_SOFTWARE);
	if (p->authed)
		auth_sign(&p->ar, &b);
	if (p->fingerprint)
		stun_build_fingerprint(&b);
	return stun_build_finish(&b);
}

static void complete(struct rdv_pending *p, enum rdv_offer_state st, const struct rdv_msg *ans)
{
	struct rdv_worker *rw = p->rw;
	int len = build_final(p, st, ans);
	char as[64];

	rdv_offer_remove(rw->svc->reg, p->slot);
	p->slot = -1;
	p->done = true;
	count(rw, st == RDV_OFFER_ANSWERED ? RC_ANSWERED :
		  st == RDV_OFFER_DECLINED ? RC_DECLINED : RC_TIMEOUTS);
	ev_timer_stop(rw->w->loop, &p->timer);
	ev_timer_set(&p->timer, RDV_LINGER, 0);
	ev_timer_start(rw->w->loop, &p->timer);
	log_peer(LOG_INFO, &p->peer.sa, "rendezvous: connect to %s: %s (%s)", p->target.id,
		 st == RDV_OFFER_ANSWERED ? "answered" :
		 st == RDV_OFFER_DECLINED ? "declined" : "no answer",
		 stun_sockaddr_str(&p->target.flow.peer, as, sizeof(as)));
	if (len < 0) {
		log_msg(LOG_ERROR, "rendezvous: building a response: %s", stun_strerror(len));
		return;
	}
	p->resp_len = (size_t)len;
	send_response(p);
}

/* RFC 8489 s6.2.1: wait RTO, 2 RTO, 4 RTO ... after each send, and Rm RTO
 * after the last; over a stream, the whole of that after the one send. */
static double next_wait(const struct rdv_pending *p)
{
	double total = RDV_OFFER_RTO * ((1u << (RDV_OFFER_RC - 1)) - 1) + RDV_OFFER_RTO * RDV_OFFER_RM;

	if (reliable(p->target.flow.tp))
		return total;
	if (p->sends < RDV_OFFER_RC)
		return RDV_OFFER_RTO * (double)(1u << (p->sends - 1));
	return RDV_OFFER_RTO * RDV_OFFER_RM;
}

static void pending_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct rdv_pending *p = t->data;
	struct rdv_msg ans;
	enum rdv_offer_state st;

	(void)revents;
	if (p->done) {
		pending_free(p);
		return;
	}
	st = rdv_offer_poll(p->rw->svc->reg, p->slot, false, NULL);
	if (st == RDV_OFFER_WAITING && !reliable(p->target.flow.tp) && p->sends < RDV_OFFER_RC) {
		send_offer(p);
		ev_timer_set(t, next_wait(p), 0);
		ev_timer_start(loop, t);
		return;
	}
	st = rdv_offer_poll(p->rw->svc->reg, p->slot, true, &ans);
	complete(p, st, &ans);
}

/* ---- the mailbox and wake-ups --------------------------------------------- */

static void deliver_mail(struct rdv_worker *rw)
{
	struct rdv_mail *m, *next;
	struct rdv_flow f;

	pthread_mutex_lock(&rw->mbox_lock);
	m = rw->mbox;
	rw->mbox = NULL;
	pthread_mutex_unlock(&rw->mbox_lock);
	for (; m; m = next) {
		next = m->next;
		if (reg_flow(rw, m->id, m->gen, &f))
			send_on(f.tp, f.conn, m->buf, m->len);
		free(m);
	}
}

static void collect_answers(struct rdv_worker *rw)
{
	struct rdv_pending *p, *next;
	struct rdv_msg ans;
	enum rdv_offer_state st;

	for (p = rw->pending; p; p = next) {
		next = p->next;
		if (p->done)
			continue;
		st = rdv_offer_poll(rw->svc->reg, p->slot, false, &ans);
		if (st != RDV_OFFER_WAITING)
			complete(p, st, &ans);
	}
}

static void wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	struct rdv_worker *rw = a->data;

	(void)loop;
	(void)revents;
	deliver_mail(rw);
	collect_answers(rw);
}

static void wake_owner(struct rdv_worker *rw, int owner)
{
	struct rdv_worker *o = owner >= 0 && owner < RDV_WORKERS_MAX ? rw->svc->workers[owner] : NULL;

	if (o)
		ev_async_send(o->w->loop, &o->wake);
}

/* ---- per worker -------------------------------------------------------------- */

int rdv_service_worker_start(struct worker *w)
{
	struct rdv_service *s = w->shared->rdv;
	struct rdv_worker *rw;

	if (!s || w->id < 0 || w->id >= RDV_WORKERS_MAX)
		return 0;
	rw = calloc(1, sizeof(*rw));
	if (!rw)
		return -ENOMEM;
	rw->tx = txcache_new(RDV_TXCACHE_ENTRIES);
	if (!rw->tx || pthread_mutex_init(&rw->mbox_lock, NULL)) {
		txcache_free(rw->tx);
		free(rw);
		return -ENOMEM;
	}
	rw->w = w;
	rw->svc = s;
	ev_async_init(&rw->wake, wake_cb);
	rw->wake.data = rw;
	ev_async_start(w->loop, &rw->wake);
	w->rdv = rw;
	s->workers[w->id] = rw;
	return 0;
}

void rdv_service_worker_free(struct worker *w)
{
	struct rdv_worker *rw = w->rdv;
	struct rdv_mail *m;

	if (!rw)
		return;
	while (rw->pending)
		pending_free(rw->pending);
	while ((m = rw->mbox)) {
		rw->mbox = m->next;
		free(m);
	}
	ev_async_stop(w->loop, &rw->wake);
	pthread_mutex_destroy(&rw->mbox_lock);
	txcache_free(rw->tx);
	rw->svc->workers[w->id] = NULL;
	free(rw);
	w->rdv = NULL;
}

static void flow_closed(struct rdv_worker *rw, const void *conn)
{
	if (!rw)
		return;
	rdv_registry_drop_conn(rw->svc->reg, conn);
	for (struct rdv_pending *p = rw->pending; p; p = p->next)
		if (p->conn == conn)
			p->conn = NULL;
}

void rdv_service_conn_closed(struct stream_conn *c)
{
	flow_closed(c->w->rdv, c);
}

void rdv_service_sess_closed(struct worker *w, struct tls_sess *s)
{
	flow_closed(w->rdv, s);
}

/* ---- requests ---------------------------------------------------------------- */

/* Who owns what a request registers: the account name; for a TURN REST
 * credential "<expiry>:<user>" the user, so that a fresh credential of the
 * same user keeps its IDs (a bare "<expiry>" is its own owner). */
static const char *owner_of(const struct auth_result *ar)
{
	const char *colon;

	if (ar->outcome != AUTH_OK_REST)
		return ar->username;
	colon = strchr(ar->username, ':');
	return colon && colon[1] ? colon + 1 : ar->username;
}

/* RFC 8489 s9.2.4, as TURN does: without credentials configured, refused
 * (403) unless no-auth, where every peer is user "". */
static int authenticate(struct rdv_req *r)
{
	const struct auth_ctx *ctx = r->w->turn_auth;

	r->user = "";
	if (!ctx && r->w->cfg->no_auth)
		return 0;
	if (!ctx)
		return STUN_ERR_FORBIDDEN;
	auth_check(ctx, r->m, (uint64_t)r->now, r->in->peer, &r->ar, NULL);
	if (r->ar.code)
		return r->ar.code;
	r->authed = true;
	r->user = owner_of(&r->ar);
	return 0;
}

/* What to write to later: the stream connection or the TLS/DTLS session. */
static void *conn_of(const struct stun_in *in)
{
	if (in->tp == TP_TCP)
		return in->conn;
	return in->tp == TP_UDP ? NULL : in->sess;
}

static struct rdv_flow flow_of(const struct rdv_req *r)
{
	struct rdv_flow f = {
		.tp = r->in->tp, .worker = r->w->id, .laddr = r->in->laddr,
		.peer = *r->in->peer, .conn = conn_of(r->in),
	};

	return f;
}

/* docs/PROTOCOL.md s4.1: default 120 s, clamped to 10..3600; 0 deletes
 * on a refresh. */
static uint32_t lifetime_of(const struct rdv_req *r, bool create)
{
	uint32_t l = RDV_LIFETIME_DEFAULT;

	if (stun_msg_has(r->m, STUN_ATTR_LIFETIME))
		l = r->m->lifetime;
	if (!l && !create)
		return 0;
	if (l < RDV_LIFETIME_MIN)
		return RDV_LIFETIME_MIN;
	return l > RDV_LIFETIME_MAX ? RDV_LIFETIME_MAX : l;
}

static int do_register(struct rdv_req *r, bool create)
{
	uint32_t life = lifetime_of(r, create);
	struct rdv_flow f = flow_of(r);
	int rc;

	if (!r->rdv.has_id)
		return STUN_ERR_BAD_REQUEST;
	rc = rdv_registry_put(r->rw->svc->reg, r->rdv.id, r->user, &f, r->ar.key,
			      r->authed ? r->ar.key_len : 0, life, create, r->now, NULL);
	if (rc)
		return -rc;
	count(r->rw, !life ? RC_DELETED : create ? RC_REGISTERED : RC_REFRESHED);
	rdv_build_id(&r->b, r->rdv.id);
	stun_build_u32(&r->b, STUN_ATTR_LIFETIME, life);
	stun_build_xor_addr(&r->b, STUN_ATTR_XOR_MAPPED_ADDRESS, r->in->peer);
	log_peer(LOG_INFO, &r->in->peer->sa, "rendezvous: %s %s by \"%s\" over %s for %us",
		 r->rdv.id, life ? (create ? "registered" : "refreshed") : "deleted", r->user,
		 transport_name(r->in->tp), life);
	return 0;
}

/* The Offer indication (s4.3), signed with the registered peer's key. */
static int build_offer(struct rdv_pending *p, const struct rdv_req *r)
{
	struct stun_builder b;
	int len;

	stun_build_init(&b, p->offer, sizeof(p->offer), RDV_METHOD_OFFER, STUN_CLASS_INDICATION,
			p->offer_id);
	rdv_build_offer_id(&b, p->offer_id);
	rdv_build_id(&b, p->target.id);
	if (r->user[0])
		rdv_build_from(&b, r->user, strlen(r->user));
	stun_build_xor_addr(&b, STUN_ATTR_XOR_PEER_ADDRESS, r->in->peer);
	rdv_build_session(&b, &r->rdv);
	if (p->target.keylen)
		stun_build_mi(&b, p->target.key, p->target.keylen);
	stun_build_fingerprint(&b);
	len = stun_build_finish(&b);
	if (len < 0)
		return len;
	p->offer_len = (size_t)len;
	return 0;
}

static struct rdv_pending *find_pending(struct rdv_worker *rw, const struct rdv_req *r)
{
	for (struct rdv_pending *p = rw->pending; p; p = p->next)
		if (!memcmp(p->tid, r->m->tid, STUN_TID_LEN) && p->tp == (int)r->in->tp &&
		    stun_sockaddr_equal(&p->peer, r->in->peer))
			return p;
	return NULL;
}

static struct rdv_pending *pending_new(struct rdv_req *r, const struct rdv_reg *t)
{
	struct rdv_pending *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	if (getrandom(p->offer_id, sizeof(p->offer_id), 0) != (ssize_t)sizeof(p->offer_id)) {
		free(p);
		return NULL;
	}
	p->rw = r->rw;
	p->slot = -1;
	memcpy(p->tid, r->m->tid, STUN_TID_LEN);
	p->fingerprint = r->m->fp_off != 0;
	p->authed = r->authed;
	if (r->authed)
		p->ar = r->ar;
	p->tp = r->in->tp;
	p->laddr = r->in->laddr;
	p->peer = *r->in->peer;
	p->conn = conn_of(r->in);
	p->target = *t;
	ev_timer_init(&p->timer, pending_timer, 0, 0);
	p->timer.data = p;
	return p;
}

static void pending_start(struct rdv_worker *rw, struct rdv_pending *p)
{
	p->next = rw->pending;
	if (rw->pending)
		rw->pending->prev = p;
	rw->pending = p;
	rw->n_pending++;
	send_offer(p);
	ev_timer_set(&p->timer, next_wait(p), 0);
	ev_timer_start(rw->w->loop, &p->timer);
}

/* A retransmitted RdvConnect: absorbed while pending, answered again from
 * the kept response after (RFC 8489 s6.3.1). Returns true if it was one. */
static bool connect_retransmission(struct rdv_req *r)
{
	struct rdv_pending *p = find_pending(r->rw, r);

	if (!p)
		return false;
	if (p->done && p->resp_len <= r->out->cap) {
		memcpy(r->out->buf, p->resp, p->resp_len);
		r->out->len = p->resp_len;
		r->out->authenticated = true;
	}
	return true;
}

/* s4.3. Returns 0 when the response is on its way later, or an error. */
static int do_connect(struct rdv_req *r)
{
	struct rdv_reg t;
	struct rdv_pending *p;
	int rc;

	if (!r->rdv.has_id || !r->rdv.has_ufrag || !r->rdv.has_pwd || !r->rdv.has_tie_breaker)
		return STUN_ERR_BAD_REQUEST;
	if (r->rw->n_pending >= RDV_PENDING_MAX)
		return RDV_ERR_FULL;
	rc = rdv_registry_get(r->rw->svc->reg, r->rdv.id, r->now, &t);
	if (rc)
		return -rc;
	p = pending_new(r, &t);
	if (!p)
		return STUN_ERR_SERVER_ERROR;
	rc = build_offer(p, r);
	if (!rc)
		rc = p->slot = rdv_offer_add(r->rw->svc->reg, p->offer_id, r->w->id, t.user);
	if (rc < 0) {
		auth_result_wipe(&p->ar);
		free(p);
		return rc == -RDV_ERR_FULL ? RDV_ERR_FULL : STUN_ERR_SERVER_ERROR;
	}
	count(r->rw, RC_CONNECTS);
	pending_start(r->rw, p);
	return 0;
}

/* s4.3: the registered peer's Answer (or refusal: ERROR-CODE). */
static int do_answer(struct rdv_req *r)
{
	bool decline = stun_msg_has(r->m, STUN_ATTR_ERROR_CODE);
	int owner = -1, rc;

	if (!r->rdv.has_offer_id)
		return STUN_ERR_BAD_REQUEST;
	if (!decline && (!r->rdv.has_ufrag || !r->rdv.has_pwd || !r->rdv.has_tie_breaker))
		return STUN_ERR_BAD_REQUEST;
	rc = rdv_offer_answer(r->rw->svc->reg, r->rdv.offer_id, r->user, decline ? NULL : &r->rdv,
			      &owner);
	if (rc < 0)
		return -rc;
	if (rc == 0)
		wake_owner(r->rw, owner);
	return 0;
}

static void start_response(struct rdv_req *r, uint8_t cls)
{
	stun_build_init(&r->b, r->out->buf, r->out->cap, r->m->method, cls, r->m->tid);
}

static void finish_response(struct rdv_req *r)
{
	int len;

	if (!r->w->cfg->no_software_attribute)
		stun_build_str(&r->b, STUN_ATTR_SOFTWARE, STUND_SOFTWARE);
	if (r->authed)
		auth_sign(&r->ar, &r->b);
	if (r->m->fp_off)
		stun_build_fingerprint(&r->b);
	len = stun_build_finish(&r->b);
	r->out->len = len > 0 ? (size_t)len : 0;
	r->out->authenticated = r->authed;
	if (len < 0)
		log_msg(LOG_ERROR, "rendezvous: building a %s response: %s",
			rdv_method_name(r->m->method), stun_strerror(len));
}

static void error_response(struct rdv_req *r, int code, bool from_auth)
{
	start_response(r, STUN_CLASS_ERROR);
	if (from_auth) {
		auth_build_error(&r->ar, &r->b);
	} else {
		const char *why = r->w->turn_auth ? rdv_error_reason((uint16_t)code)
						  : TURN_NO_CREDENTIALS_REASON;

		stun_build_error(&r->b, (uint16_t)code, why);
		count(r->rw, RC_REFUSED);
		log_peer(LOG_INFO, &r->in->peer->sa, "rendezvous: %s refused: %d %s",
			 rdv_method_name(r->m->method), code, why);
	}
	metrics_error(&r->w->metrics, (uint16_t)code);
	finish_response(r);
}

static int run_method(struct rdv_req *r)
{
	switch (r->m->method) {
	case RDV_METHOD_REGISTER:
		return do_register(r, true);
	case RDV_METHOD_REFRESH:
		return do_register(r, false);
	case RDV_METHOD_ANSWER:
		return do_answer(r);
	}
	return STUN_ERR_BAD_REQUEST;
}

static void handle(struct rdv_req *r)
{
	int code = authenticate(r);

	if (code) {
		error_response(r, code, code != STUN_ERR_FORBIDDEN);
		return;
	}
	if (rdv_msg_decode(&r->rdv, r->m)) {
		error_response(r, STUN_ERR_BAD_REQUEST, false);
		return;
	}
	if (r->m->method == RDV_METHOD_CONNECT) {
		if (connect_retransmission(r))
			return;
		code = do_connect(r);
		if (code)
			error_response(r, code, false);
		return;
	}
	start_response(r, STUN_CLASS_SUCCESS);
	code = run_method(r);
	if (code)
		error_response(r, code, false);
	else
		finish_response(r);
}

void rdv_service_request(struct worker *w, const struct stun_msg *m, const struct stun_in *in,
			 struct stun_out *out)
{
	struct rdv_req r;
	struct turn_5tuple ft;
	const uint8_t *cached;
	size_t clen = 0;

	if (!w->rdv || !w->cfg->rendezvous) {
		dispatch_error(w, m, out, STUN_ERR_BAD_REQUEST, "Unknown method");
		return;
	}
	if (in->tp != TP_UDP && !conn_of(in)) {
		dispatch_error(w, m, out, STUN_ERR_BAD_REQUEST, "Rendezvous not offered on this transport");
		return;
	}
	memset(&r, 0, offsetof(struct rdv_req, ar));
	r.w = w;
	r.rw = w->rdv;
	r.m = m;
	r.in = in;
	r.out = out;
	r.now = ev_now(w->loop);
	turn_5tuple_set(&ft, reliable(in->tp) ? IPPROTO_TCP : IPPROTO_UDP, in->peer,
			&w->shared->laddrs.a[in->laddr].addr);
	/* RFC 8489 s6.3.1: a retransmission gets the same response */
	cached = txcache_get(r.rw->tx, &ft, m->tid, r.now, &clen);
	if (cached && clen <= out->cap) {
		memcpy(out->buf, cached, clen);
		out->len = clen;
		out->authenticated = true;
		return;
	}
	handle(&r);
	if (out->len && m->method != RDV_METHOD_CONNECT)
		txcache_put(r.rw->tx, &ft, m->tid, out->buf, out->len, r.now);
	if (r.authed)
		auth_result_wipe(&r.ar);
}

/* ---- metrics ----------------------------------------------------------------- */

#define PUT(...) (n = metrics_appendf(buf, cap, n, __VA_ARGS__))

size_t rdv_service_metrics_write(struct worker *const *w, int nw, char *buf, size_t cap)
{
	struct rdv_service *s = nw > 0 ? w[0]->shared->rdv : NULL;
	size_t n = 0;

	if (!s)
		return 0;
	PUT("stund_rdv_registrations %u\n", rdv_registry_count(s->reg));
	PUT("stund_rdv_pending_offers %u\n", rdv_offer_count(s->reg));
	for (int c = 0; c < RC_COUNT; c++) {
		uint64_t v = 0;

		for (int i = 0; i < nw; i++)
			if (w[i]->rdv)
				v += atomic_load_explicit(&w[i]->rdv->ctr[c], memory_order_relaxed);
		PUT("%s %llu\n", counter_name[c], (unsigned long long)v);
	}
	return n > cap ? cap : n;
}
