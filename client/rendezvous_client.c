/* rendezvous_client: Register / RdvRefresh / RdvConnect / Offer / Answer
 * (docs/PROTOCOL.md s4) over client/stun_client. */
#include "rendezvous_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

enum txn_kind { TK_REGISTER, TK_REFRESH, TK_UNREGISTER, TK_CONNECT, TK_ANSWER, TK_DECLINE };

struct rdv_txn {
	struct rdv_client *rc;
	struct rdv_txn *prev, *next;
	enum txn_kind kind;
	uint8_t tid[STUN_TID_LEN];
	char id[RDV_ID_MAX + 1];
	uint32_t lifetime;
	struct rdv_msg sess;           /* connect / answer: what we send */
	uint8_t offer_id[RDV_OFFER_ID_LEN];
	uint16_t code;                 /* decline */
	char reason[128];
	rdv_result_cb cb;
	void *arg;
};

struct rdv_client {
	struct stun_client *sc;        /* borrowed */
	stun_sockaddr server;
	struct stun_cred *cred;        /* borrowed */
	struct ev_loop *loop;
	stun_other_cb other;
	void *other_arg;
	rdv_offer_cb on_offer;
	void *offer_arg;
	struct rdv_txn *txns;
	bool freeing;

	/* the registration we keep */
	char id[RDV_ID_MAX + 1];
	uint32_t want_lifetime, lifetime;
	bool registered;
	rdv_result_cb reg_cb;
	void *reg_arg;
	ev_timer refresh, keepalive;

	uint8_t seen[RDV_SEEN_OFFERS][RDV_OFFER_ID_LEN];
	unsigned n_seen;
};

/* ---- sessions ---- */

void rdv_session_from_msg(struct rdv_session *s, const struct rdv_msg *r)
{
	memset(s, 0, sizeof(*s));
	s->n_cand = r->n_cand;
	memcpy(s->cand, r->cand, r->n_cand * sizeof(r->cand[0]));
	snprintf(s->ufrag, sizeof(s->ufrag), "%s", r->ufrag);
	snprintf(s->pwd, sizeof(s->pwd), "%s", r->pwd);
	s->tie_breaker = r->tie_breaker;
}

void rdv_session_to_msg(struct rdv_msg *r, const struct rdv_session *s)
{
	memset(r, 0, sizeof(*r));
	r->n_cand = (uint8_t)(s->n_cand > RDV_MAX_CANDIDATES ? RDV_MAX_CANDIDATES : s->n_cand);
	memcpy(r->cand, s->cand, r->n_cand * sizeof(r->cand[0]));
	snprintf(r->ufrag, sizeof(r->ufrag), "%s", s->ufrag);
	snprintf(r->pwd, sizeof(r->pwd), "%s", s->pwd);
	r->tie_breaker = s->tie_breaker;
	r->has_ufrag = r->has_pwd = r->has_tie_breaker = true;
}

/* ---- transactions ---- */

static uint16_t method_of(enum txn_kind k)
{
	switch (k) {
	case TK_REGISTER: return RDV_METHOD_REGISTER;
	case TK_REFRESH:
	case TK_UNREGISTER: return RDV_METHOD_REFRESH;
	case TK_CONNECT: return RDV_METHOD_CONNECT;
	default: return RDV_METHOD_ANSWER;
	}
}

static void txn_attrs(struct stun_builder *b, void *arg)
{
	struct rdv_txn *t = arg;

	switch (t->kind) {
	case TK_REGISTER:
	case TK_REFRESH:
	case TK_UNREGISTER:
		rdv_build_id(b, t->id);
		if (t->lifetime || t->kind == TK_UNREGISTER)
			stun_build_u32(b, STUN_ATTR_LIFETIME, t->lifetime);
		return;
	case TK_CONNECT:
		rdv_build_id(b, t->id);
		rdv_build_session(b, &t->sess);
		return;
	case TK_ANSWER:
		rdv_build_offer_id(b, t->offer_id);
		rdv_build_session(b, &t->sess);
		return;
	case TK_DECLINE:
		rdv_build_offer_id(b, t->offer_id);
		stun_build_error(b, t->code, t->reason);
		return;
	}
}

static void txn_unlink(struct rdv_txn *t)
{
	struct rdv_client *rc = t->rc;

	if (t->prev)
		t->prev->next = t->next;
	else
		rc->txns = t->next;
	if (t->next)
		t->next->prev = t->prev;
}

static void txn_cb(struct stun_client *sc, const struct stun_txn_result *r, void *arg);

static int txn_start(struct rdv_client *rc, struct rdv_txn *t)
{
	struct stun_request req = {
		.method = method_of(t->kind),
		.dest = rc->server,
		.attrs = txn_attrs,
		.attrs_arg = t,
		.cred = rc->cred,
		.fingerprint = true,
		.cb = txn_cb,
		.arg = t,
	};
	int r;

	t->rc = rc;
	t->next = rc->txns;
	if (rc->txns)
		rc->txns->prev = t;
	rc->txns = t;
	r = stun_client_request(rc->sc, &req, t->tid);
	if (r) {
		txn_unlink(t);
		free(t);
	}
	return r;
}

static struct rdv_txn *txn_new(enum txn_kind kind, const char *id, rdv_result_cb cb, void *arg)
{
	struct rdv_txn *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->kind = kind;
	if (id)
		snprintf(t->id, sizeof(t->id), "%s", id);
	t->cb = cb;
	t->arg = arg;
	return t;
}

/* ---- the registration ---- */

static int send_refresh(struct rdv_client *rc, enum txn_kind kind)
{
	struct rdv_txn *t = txn_new(kind, rc->id, NULL, NULL);

	if (!t)
		return -ENOMEM;
	t->lifetime = kind == TK_REFRESH ? rc->lifetime : rc->want_lifetime;
	return txn_start(rc, t);
}

static void refresh_due(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rdv_client *rc = w->data;

	(void)loop;
	(void)revents;
	if (rc->registered)
		send_refresh(rc, TK_REFRESH);
}

/* docs/PROTOCOL.md s4.2: a Binding indication holds the NAT mapping. */
static void keepalive_due(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rdv_client *rc = w->data;
	struct stun_builder b;
	uint8_t buf[32], tid[STUN_TID_LEN];
	int n;

	(void)loop;
	(void)revents;
	if (getrandom(tid, sizeof(tid), 0) != (ssize_t)sizeof(tid))
		return;
	stun_build_init(&b, buf, sizeof(buf), STUN_METHOD_BINDING, STUN_CLASS_INDICATION, tid);
	stun_build_fingerprint(&b);
	n = stun_build_finish(&b);
	if (n > 0)
		stun_client_send(rc->sc, &rc->server, buf, (size_t)n);
}

static void registered(struct rdv_client *rc, uint32_t lifetime)
{
	double every = lifetime ? lifetime / 3.0 : RDV_LIFETIME_DEFAULT / 3.0;

	rc->registered = true;
	rc->lifetime = lifetime ? lifetime : RDV_LIFETIME_DEFAULT;
	ev_timer_stop(rc->loop, &rc->refresh);
	ev_timer_set(&rc->refresh, every, 0);
	ev_timer_start(rc->loop, &rc->refresh);
	if (!ev_is_active(&rc->keepalive)) {
		ev_timer_set(&rc->keepalive, RDV_KEEPALIVE_S, RDV_KEEPALIVE_S);
		ev_timer_start(rc->loop, &rc->keepalive);
	}
}

static void unregistered(struct rdv_client *rc)
{
	rc->registered = false;
	ev_timer_stop(rc->loop, &rc->refresh);
	ev_timer_stop(rc->loop, &rc->keepalive);
}

/* ---- results ---- */

static void fill_result(struct rdv_result *out, const struct stun_txn_result *r,
			struct rdv_session *answer)
{
	const struct stun_msg *m = r->msg;
	struct rdv_msg d;

	memset(out, 0, sizeof(*out));
	out->txn = r->status;
	out->status = -1;
	out->reason = stun_txn_status_str(r->status);
	if (r->status == STUN_TXN_AUTH_FAILED)
		out->status = r->code ? r->code : STUN_ERR_UNAUTHORIZED;
	if (!m || (r->status != STUN_TXN_SUCCESS && r->status != STUN_TXN_ERROR_RESP))
		return;
	out->status = r->status == STUN_TXN_SUCCESS ? 0 : r->code;
	out->reason = out->status ? rdv_error_reason((uint16_t)out->status) : "OK";
	out->has_mapped = stun_msg_has(m, STUN_ATTR_XOR_MAPPED_ADDRESS);
	if (out->has_mapped)
		out->mapped = m->xor_mapped;
	out->has_peer = m->n_xor_peer > 0;
	if (out->has_peer)
		out->peer = m->xor_peer[0];
	if (stun_msg_has(m, STUN_ATTR_LIFETIME))
		out->lifetime = m->lifetime;
	if (!out->status && m->method == RDV_METHOD_CONNECT && !rdv_msg_decode(&d, m)) {
		rdv_session_from_msg(answer, &d);
		out->answer = answer;
	}
}

static void on_registration_result(struct rdv_client *rc, struct rdv_txn *t,
				   const struct rdv_result *res)
{
	if (t->kind == TK_UNREGISTER)
		return;
	if (!res->status) {
		registered(rc, res->lifetime);
		if (t->kind == TK_REGISTER && rc->reg_cb)
			rc->reg_cb(rc, res, rc->reg_arg);
		return;
	}
	/* the server forgot us (expired, restarted): register again */
	if (t->kind == TK_REFRESH && res->status == RDV_ERR_UNKNOWN_PEER) {
		send_refresh(rc, TK_REGISTER);
		return;
	}
	if (t->kind == TK_REFRESH && res->status < 0 && rc->registered) {
		/* no response this time: try again at the next third */
		registered(rc, rc->lifetime);
		return;
	}
	unregistered(rc);
	if (rc->reg_cb)
		rc->reg_cb(rc, res, rc->reg_arg);
}

static void txn_cb(struct stun_client *sc, const struct stun_txn_result *r, void *arg)
{
	struct rdv_txn *t = arg;
	struct rdv_client *rc = t->rc;
	struct rdv_session answer;
	struct rdv_result res;

	(void)sc;
	txn_unlink(t);
	if (rc->freeing || r->status == STUN_TXN_CANCELLED) {
		free(t);
		return;
	}
	fill_result(&res, r, &answer);
	if (t->kind == TK_REGISTER || t->kind == TK_REFRESH || t->kind == TK_UNREGISTER)
		on_registration_result(rc, t, &res);
	if (t->cb && t->kind != TK_REGISTER)
		t->cb(rc, &res, t->arg);
	free(t);
}

/* ---- offers ---- */

static bool seen_before(struct rdv_client *rc, const uint8_t id[RDV_OFFER_ID_LEN])
{
	unsigned n = rc->n_seen < RDV_SEEN_OFFERS ? rc->n_seen : RDV_SEEN_OFFERS;

	for (unsigned i = 0; i < n; i++)
		if (!memcmp(rc->seen[i], id, RDV_OFFER_ID_LEN))
			return true;
	memcpy(rc->seen[rc->n_seen++ % RDV_SEEN_OFFERS], id, RDV_OFFER_ID_LEN);
	return false;
}

/* The Offer comes from the server, signed with our key (s4.3). */
static bool offer_authentic(const struct rdv_client *rc, const struct stun_msg *m)
{
	if (!rc->cred || rc->cred->keylen <= 0)
		return true;
	if (!m->mi_off)
		return false;
	return stun_msg_verify_mi(m, rc->cred->key, (size_t)rc->cred->keylen) == 0;
}

bool rdv_client_input(struct rdv_client *rc, const uint8_t *buf, size_t len,
		      const stun_sockaddr *from, const struct stun_msg *m)
{
	struct rdv_offer o;
	struct rdv_msg d;

	(void)buf;
	(void)len;
	if (!m || m->method != RDV_METHOD_OFFER || m->cls != STUN_CLASS_INDICATION)
		return false;
	if (!stun_sockaddr_equal(from, &rc->server) || !offer_authentic(rc, m))
		return true; /* not from our server: dropped */
	if (rdv_msg_decode(&d, m) || !d.has_offer_id || !d.has_id)
		return true;
	if (seen_before(rc, d.offer_id) || !rc->on_offer)
		return true;
	memset(&o, 0, sizeof(o));
	memcpy(o.offer_id, d.offer_id, RDV_OFFER_ID_LEN);
	snprintf(o.id, sizeof(o.id), "%s", d.id);
	snprintf(o.from, sizeof(o.from), "%s", d.has_from ? d.from : "");
	o.has_peer = m->n_xor_peer > 0;
	if (o.has_peer)
		o.peer = m->xor_peer[0];
	rdv_session_from_msg(&o.session, &d);
	rc->on_offer(rc, &o, rc->offer_arg);
	return true;
}

static void other_cb(struct stun_client *sc, const uint8_t *buf, size_t len,
		     const stun_sockaddr *from, const struct stun_msg *m, void *arg)
{
	struct rdv_client *rc = arg;

	if (rdv_client_input(rc, buf, len, from, m))
		return;
	if (rc->other)
		rc->other(sc, buf, len, from, m, rc->other_arg);
}

/* ---- the API ---- */

int rdv_client_new(struct stun_client *sc, const stun_sockaddr *server, struct stun_cred *cred,
		   struct rdv_client **out)
{
	struct rdv_client *rc;

	if (!sc || !server || !out)
		return -EINVAL;
	rc = calloc(1, sizeof(*rc));
	if (!rc)
		return -ENOMEM;
	rc->sc = sc;
	rc->server = *server;
	rc->cred = cred;
	rc->loop = stun_client_loop(sc);
	ev_timer_init(&rc->refresh, refresh_due, 0, 0);
	ev_timer_init(&rc->keepalive, keepalive_due, 0, 0);
	rc->refresh.data = rc->keepalive.data = rc;
	stun_client_set_other(sc, other_cb, rc);
	*out = rc;
	return 0;
}

void rdv_client_free(struct rdv_client *rc)
{
	if (!rc)
		return;
	rc->freeing = true;
	while (rc->txns) {
		struct rdv_txn *t = rc->txns;

		stun_client_cancel(rc->sc, t->tid);
		if (rc->txns == t) { /* not found by the stun_client */
			txn_unlink(t);
			free(t);
		}
	}
	unregistered(rc);
	stun_client_set_other(rc->sc, rc->other, rc->other_arg);
	free(rc);
}

void rdv_client_set_other(struct rdv_client *rc, stun_other_cb cb, void *arg)
{
	rc->other = cb;
	rc->other_arg = arg;
}

void rdv_client_on_offer(struct rdv_client *rc, rdv_offer_cb cb, void *arg)
{
	rc->on_offer = cb;
	rc->offer_arg = arg;
}

int rdv_client_register(struct rdv_client *rc, const char *id, uint32_t lifetime,
			rdv_result_cb cb, void *arg)
{
	if (!id || !rdv_id_valid(id, strlen(id)))
		return -EINVAL;
	snprintf(rc->id, sizeof(rc->id), "%s", id);
	rc->want_lifetime = lifetime;
	rc->reg_cb = cb;
	rc->reg_arg = arg;
	return send_refresh(rc, TK_REGISTER);
}

int rdv_client_unregister(struct rdv_client *rc, rdv_result_cb cb, void *arg)
{
	struct rdv_txn *t;

	if (!rc->id[0])
		return -EINVAL;
	unregistered(rc);
	t = txn_new(TK_UNREGISTER, rc->id, cb, arg);
	if (!t)
		return -ENOMEM;
	return txn_start(rc, t);
}

int rdv_client_connect(struct rdv_client *rc, const char *id, const struct rdv_session *offer,
		       rdv_result_cb cb, void *arg)
{
	struct rdv_txn *t;

	if (!id || !rdv_id_valid(id, strlen(id)) || !offer)
		return -EINVAL;
	t = txn_new(TK_CONNECT, id, cb, arg);
	if (!t)
		return -ENOMEM;
	rdv_session_to_msg(&t->sess, offer);
	return txn_start(rc, t);
}

int rdv_client_answer(struct rdv_client *rc, const uint8_t offer_id[RDV_OFFER_ID_LEN],
		      const struct rdv_session *answer, rdv_result_cb cb, void *arg)
{
	struct rdv_txn *t = txn_new(TK_ANSWER, NULL, cb, arg);

	if (!t)
		return -ENOMEM;
	memcpy(t->offer_id, offer_id, RDV_OFFER_ID_LEN);
	rdv_session_to_msg(&t->sess, answer);
	return txn_start(rc, t);
}

int rdv_client_decline(struct rdv_client *rc, const uint8_t offer_id[RDV_OFFER_ID_LEN],
		       uint16_t code, const char *reason, rdv_result_cb cb, void *arg)
{
	struct rdv_txn *t = txn_new(TK_DECLINE, NULL, cb, arg);

	if (!t)
		return -ENOMEM;
	memcpy(t->offer_id, offer_id, RDV_OFFER_ID_LEN);
	t->code = code >= 300 && code <= 699 ? code : RDV_ERR_DECLINED;
	snprintf(t->reason, sizeof(t->reason), "%s", reason ? reason : "Declined");
	return txn_start(rc, t);
}
