/* ice: one ICE session on a stun_client (see ice.h). */
#include "ice.h"

#include <errno.h>
#include <ifaddrs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define ICE_KEY_MAX 512
#define NOMINATE_AFTER_MS 200
#define CHECK_RC 5
#define CHECK_RM 4
#define FAIL_AFTER_MS 5000
#define RELAY_FALLBACK_MS 1500
#define CONSENT_INTERVAL_MS 5000   /* RFC 7675 s5.1 */
#define CONSENT_INTERVAL_MIN_MS 4000
#define CONSENT_TIMEOUT_MS 30000

struct ice_check {
	struct ice *ice;
	unsigned idx;
	bool active;
	bool nominating;           /* carries USE-CANDIDATE */
	bool consent;              /* an RFC 7675 consent check */
	bool renominate;           /* a cancelled nominating check: redo it */
	bool prompt;               /* next check of this pair: the minimum RTO */
	uint8_t tid[STUN_TID_LEN];
};

struct ice {
	struct stun_client *sc;    /* borrowed */
	struct turn_client *turn;  /* borrowed; NULL: no relayed candidate */
	struct ev_loop *loop;
	struct ice_params p;
	struct ice_creds local, remote;
	bool have_remote;
	uint8_t lkey[ICE_KEY_MAX], rkey[ICE_KEY_MAX];
	size_t lkeylen, rkeylen;
	struct ice_checklist cl;
	struct ice_check checks[ICE_MAX_PAIRS];
	/* s7.3.1.4: a cancelled check still waiting for its response */
	struct ice_check quiet[ICE_MAX_PAIRS];
	bool use_cand_seen[ICE_MAX_PAIRS]; /* controlled: nominated by the peer */
	stun_sockaddr mapped[ICE_MAX_PAIRS]; /* XOR-MAPPED-ADDRESS of the pair's check */
	/* on the TURN allocation (shared with other sessions): the permission
	 * and channel references this session holds, by remote candidate */
	bool perm_held[ICE_MAX_CANDS], chan_held[ICE_MAX_CANDS];
	enum ice_state state;
	int selected;
	bool nominated;            /* controlling: USE-CANDIDATE sent */
	ev_timer ta, nominate, consent, expiry;
	ev_tstamp t0;
	ev_tstamp consent_at;      /* the last consent response */
	struct ice_check consent_ck;
	struct ice_cbs cbs;
	struct ice_stats st;
};

static void say(const struct ice *ice, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const struct ice *ice, const char *fmt, ...)
{
	va_list ap;

	if (!ice->p.verbose)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "ice(%s): ", ice->cl.controlling ? "controlling" : "controlled");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void random_chars(char *out, size_t n)
{
	static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint8_t r[ICE_PWD_MAX];

	if (getrandom(r, n, 0) != (ssize_t)n)
		memset(r, 7, n);
	for (size_t i = 0; i < n; i++)
		out[i] = set[r[i] % 64];
	out[n] = '\0';
}

void ice_creds_random(struct ice_creds *c)
{
	/* s5.3: ufrag >= 24 bits, password >= 128 bits of randomness */
	random_chars(c->ufrag, 8);
	random_chars(c->pwd, 24);
}

uint64_t ice_tie_breaker_random(void)
{
	uint64_t v = 0;

	if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
		v = (uint64_t)ev_time();
	return v;
}

bool ice_pair_is_relayed(const struct ice *ice, unsigned idx)
{
	const struct ice_pair *p = &ice->cl.pairs[idx];

	return ice->cl.local[p->local].type == ICE_CAND_RELAY ||
	       ice->cl.remote[p->remote].type == ICE_CAND_RELAY;
}

/* A direct pair not yet Succeeded or Failed. */
static bool direct_pending(const struct ice *ice)
{
	for (unsigned i = 0; i < ice->cl.n_pairs; i++) {
		enum ice_pair_state st = ice->cl.pairs[i].state;
		if (!ice_pair_is_relayed(ice, i) && st != ICE_PAIR_SUCCEEDED && st != ICE_PAIR_FAILED)
			return true;
	}
	return false;
}

/* Connected over a relay while direct checks go on. */
static bool upgrading(const struct ice *ice)
{
	return ice->selected >= 0 && ice_pair_is_relayed(ice, (unsigned)ice->selected) &&
	       direct_pending(ice);
}

static void set_state(struct ice *ice, enum ice_state st)
{
	if (ice->state == st)
		return;
	ice->state = st;
	if (st != ICE_CHECKING && !(st == ICE_CONNECTED && upgrading(ice))) {
		ev_timer_stop(ice->loop, &ice->ta);
		ev_timer_stop(ice->loop, &ice->nominate);
	}
	if (st != ICE_CONNECTED) {
		ev_timer_stop(ice->loop, &ice->consent);
		ev_timer_stop(ice->loop, &ice->expiry);
		if (ice->consent_ck.active) /* "MUST be discarded" (s5.1) */
			stun_client_cancel(ice->sc, ice->consent_ck.tid);
	}
	if (ice->cbs.state)
		ice->cbs.state(ice, st, ice->cbs.arg);
}

/* ---- sending checks (s7.2) ---- */

static void check_attrs(struct stun_builder *b, void *arg)
{
	struct ice_check *ck = arg;
	struct ice *ice = ck->ice;
	const struct ice_pair *pr = &ice->cl.pairs[ck->idx];
	const struct ice_cand *l = &ice->cl.local[pr->local];
	char user[2 * ICE_UFRAG_MAX + 2];

	/* s7.2.2: USERNAME "RFRAG:LFRAG"; PRIORITY as if peer-reflexive */
	snprintf(user, sizeof(user), "%s:%s", ice->remote.ufrag, ice->local.ufrag);
	stun_build_str(b, STUN_ATTR_USERNAME, user);
	stun_build_u32(b, STUN_ATTR_PRIORITY,
		       ice_priority(ICE_CAND_PRFLX, (uint16_t)(l->priority >> 8), l->component));
	stun_build_u64(b, ice->cl.controlling ? STUN_ATTR_ICE_CONTROLLING : STUN_ATTR_ICE_CONTROLLED,
		       ice->p.tie_breaker);
	if (ck->nominating)
		stun_build_empty(b, STUN_ATTR_USE_CANDIDATE);
}

static void check_cb(struct stun_client *c, const struct stun_txn_result *r, void *arg);

static int relay_send(void *ctx, const stun_sockaddr *dest, const uint8_t *buf, size_t len)
{
	struct ice *ice = ctx;

	return turn_client_send(ice->turn, dest, buf, len);
}

/* Checks from a relayed candidate go through the TURN server. */
static void route_request(struct ice *ice, struct stun_request *req, unsigned idx)
{
	if (ice->cl.local[ice->cl.pairs[idx].local].type != ICE_CAND_RELAY || !ice->turn)
		return;
	req->send = relay_send;
	req->send_ctx = ice;
}

/* s14.3: "Agents MAY calculate the RTO value using other mechanisms";
 * the formula paces the whole check list, and with many pairs In-Progress
 * (prflx, predicted, filtered ones) it reaches seconds. A nomination (its
 * pair has just succeeded) and a direct pair rechecked from a birthday
 * hit's socket are single checks whose loss must not cost that long: the
 * minimum, 500 ms. */
static unsigned check_rto_ms(struct ice *ice, unsigned idx, bool nominating)
{
	bool prompt = nominating || ice->checks[idx].prompt;

	ice->checks[idx].prompt = false;
	return prompt ? ICE_RTO_MIN_MS : ice_checklist_rto_ms(&ice->cl, ice->p.ta_ms);
}

static int send_check(struct ice *ice, unsigned idx, bool nominating)
{
	struct ice_check *ck = &ice->checks[idx];
	struct stun_rto rto = {
		check_rto_ms(ice, idx, nominating), /* s14.3 */
		ice->p.check_rc, ice->p.check_rm,
	};
	struct stun_request req = {
		.method = STUN_METHOD_BINDING,
		.dest = ice->cl.remote[ice->cl.pairs[idx].remote].addr,
		.attrs = check_attrs,
		.attrs_arg = ck,
		.short_key = ice->rkey,
		.short_keylen = ice->rkeylen,
		.rto = &rto,
		.fingerprint = true,
		.cb = check_cb,
		.arg = ck,
	};
	char buf[64];
	int err;

	route_request(ice, &req, idx);
	if (ck->active)
		stun_client_cancel(ice->sc, ck->tid);
	ck->ice = ice;
	ck->idx = idx;
	ck->nominating = nominating;
	err = stun_client_request(ice->sc, &req, ck->tid);
	if (err < 0) {
		ice_checklist_result(&ice->cl, idx, false);
		return err;
	}
	ck->active = true;
	ice->st.checks_sent++;
	say(ice, "check %s -> %s%s", ice_cand_type_str(ice->cl.local[ice->cl.pairs[idx].local].type),
	    stun_sockaddr_str(&req.dest, buf, sizeof(buf)), nominating ? " (USE-CANDIDATE)" : "");
	return 0;
}

/* RFC 7675 s5.1: "each interval MUST be randomized from between 0.8 and
 * 1.2 times the basic period". */
static void consent_arm(struct ice *ice)
{
	uint16_t r = 0;

	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		r = 32768;
	double f = 0.8 + 0.4 * (r / 65535.0), ms = ice->p.consent_interval_ms * f;

	/* "MUST NOT set the period between checks to less than 4 seconds" */
	if (ms < CONSENT_INTERVAL_MIN_MS)
		ms = CONSENT_INTERVAL_MIN_MS;
	ev_timer_set(&ice->consent, ms / 1000.0, 0.);
	ev_timer_start(ice->loop, &ice->consent);
}

static void consent_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ice *ice = w->data;
	struct ice_check *ck = &ice->consent_ck;
	/* "transmitted once only": Rc = 1, then wait Rm * RTO for it */
	struct stun_rto rto = { ICE_RTO_MIN_MS, 1, 4 };
	struct stun_request req = {
		.method = STUN_METHOD_BINDING,
		.attrs = check_attrs,
		.attrs_arg = ck,
		.short_key = ice->rkey,
		.short_keylen = ice->rkeylen,
		.rto = &rto,
		.fingerprint = true,
		.cb = check_cb,
		.arg = ck,
	};

	(void)loop;
	(void)revents;
	if (ice->state != ICE_CONNECTED)
		return;
	if (!ck->active) {
		ck->ice = ice;
		ck->idx = (unsigned)ice->selected;
		ck->nominating = false;
		ck->consent = true;
		req.dest = ice->cl.remote[ice->cl.pairs[ck->idx].remote].addr;
		route_request(ice, &req, ck->idx);
		if (stun_client_request(ice->sc, &req, ck->tid) == 0) {
			ck->active = true;
			ice->st.consent_sent++;
		}
	}
	consent_arm(ice);
}

/* "if a valid STUN binding response has not been received from the
 * remote peer's transport address in 30 seconds, the endpoint MUST cease
 * transmission on that 5-tuple" */
static void expiry_arm(struct ice *ice)
{
	ev_timer_stop(ice->loop, &ice->expiry);
	ev_timer_set(&ice->expiry, ice->p.consent_timeout_ms / 1000.0, 0.);
	ev_timer_start(ice->loop, &ice->expiry);
}

static void expiry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ice *ice = w->data;

	(void)loop;
	(void)revents;
	if (ice->state != ICE_CONNECTED)
		return;
	say(ice, "consent expired: no answer for %u ms", ice->p.consent_timeout_ms);
	set_state(ice, ICE_DISCONNECTED);
}

static void consent_result(struct ice *ice, const struct stun_txn_result *r)
{
	const stun_sockaddr *remote = &ice->cl.remote[ice->cl.pairs[ice->selected].remote].addr;

	if (ice->state != ICE_CONNECTED || r->status != STUN_TXN_SUCCESS || !r->from ||
	    !stun_sockaddr_equal(r->from, remote))
		return;
	ice->st.consent_ok++;
	ice->consent_at = ev_now(ice->loop);
	expiry_arm(ice);
}

/* RFC 8656 s9: a permission for remote candidate r's IP on the TURN
 * allocation, which other sessions may share: a reference, given back by
 * ice_free() (never a deletion: the others' peers stay permitted). */
static void permit(struct ice *ice, unsigned r)
{
	if (ice->turn && !ice->perm_held[r] &&
	    turn_client_permit(ice->turn, &ice->cl.remote[r].addr, NULL, NULL) >= 0)
		ice->perm_held[r] = true;
}

/* s12: a channel of our own towards remote candidate r (each peer address
 * its own number), a reference like permit()'s. */
static void hold_channel(struct ice *ice, unsigned r)
{
	if (!ice->chan_held[r] &&
	    turn_client_bind_channel(ice->turn, &ice->cl.remote[r].addr, NULL, NULL) >= 0)
		ice->chan_held[r] = true;
}

static void release_turn(struct ice *ice)
{
	for (unsigned r = 0; ice->turn && r < ICE_MAX_CANDS; r++) {
		if (ice->perm_held[r])
			turn_client_release(ice->turn, &ice->cl.remote[r].addr, false);
		if (ice->chan_held[r])
			turn_client_release(ice->turn, &ice->cl.remote[r].addr, true);
		ice->perm_held[r] = ice->chan_held[r] = false;
	}
}

/* Just connected over a relay, as the controlling agent: a direct pair
 * that succeeded while the relayed nomination was in flight (a round trip:
 * 160 ms and more with delay) gets no later success to trigger the
 * upgrade in check_success, so it is nominated now. */
static void upgrade_at_once(struct ice *ice)
{
	int best = -1;

	if (!ice->cl.controlling || ice->state != ICE_CONNECTED || ice->selected < 0 ||
	    !ice_pair_is_relayed(ice, (unsigned)ice->selected))
		return;
	for (unsigned i = 0; i < ice->cl.n_pairs; i++)
		if (!ice_pair_is_relayed(ice, i) && ice->cl.pairs[i].state == ICE_PAIR_SUCCEEDED &&
		    (best < 0 || ice->cl.pairs[i].priority > ice->cl.pairs[best].priority))
			best = (int)i;
	if (best >= 0)
		send_check(ice, (unsigned)best, true);
}

static void select_pair(struct ice *ice, unsigned idx)
{
	char l[64], r[64];
	bool upgrade = ice->state == ICE_CONNECTED && ice->selected >= 0 &&
		       ice_pair_is_relayed(ice, (unsigned)ice->selected) &&
		       !ice_pair_is_relayed(ice, idx);

	if (ice->state == ICE_CONNECTED && !upgrade)
		return;
	ice->selected = (int)idx;
	ice->cl.pairs[idx].nominated = true;
	say(ice, "selected %s -> %s",
	    stun_sockaddr_str(&ice->cl.local[ice->cl.pairs[idx].local].addr, l, sizeof(l)),
	    stun_sockaddr_str(&ice->cl.remote[ice->cl.pairs[idx].remote].addr, r, sizeof(r)));
	if (ice->turn && ice->cl.local[ice->cl.pairs[idx].local].type == ICE_CAND_RELAY)
		hold_channel(ice, ice->cl.pairs[idx].remote); /* data as ChannelData from now on */
	ice->consent_at = ev_now(ice->loop); /* the check that just succeeded */
	ev_timer_stop(ice->loop, &ice->consent);
	consent_arm(ice);
	expiry_arm(ice);
	if (!upgrade) {
		set_state(ice, ICE_CONNECTED);
		upgrade_at_once(ice);
		return;
	}
	/* relay -> direct: the checks are done; tell the owner again */
	ice->st.switches++;
	ev_timer_stop(ice->loop, &ice->ta);
	if (ice->cbs.state)
		ice->cbs.state(ice, ICE_CONNECTED, ice->cbs.arg);
}

static bool checks_in_flight(const struct ice *ice)
{
	for (unsigned i = 0; i < ice->cl.n_pairs; i++)
		if (ice->checks[i].active || ice->quiet[i].active)
			return true;
	return false;
}

static void maybe_failed(struct ice *ice)
{
	if (ice->state != ICE_CHECKING || checks_in_flight(ice))
		return;
	if (ice->cl.n_pairs && !ice_checklist_failed(&ice->cl))
		return;
	if ((ev_now(ice->loop) - ice->t0) * 1000.0 < ice->p.fail_after_ms)
		return; /* Ta keeps ticking: looked at again on the next tick */
	say(ice, "every pair failed");
	set_state(ice, ICE_FAILED);
}

/* s7.2.5.1: a 487 means the roles were wrong: swap, recompute, retry. */
static void role_conflict(struct ice *ice, unsigned idx)
{
	ice->st.role_conflicts++;
	ice_checklist_set_role(&ice->cl, !ice->cl.controlling);
	say(ice, "487 role conflict: switched role");
	ice->cl.pairs[idx].state = ICE_PAIR_WAITING;
	ice_checklist_trigger(&ice->cl, idx);
}

static bool upgrading_to(const struct ice *ice, unsigned idx)
{
	return ice->selected >= 0 && ice_pair_is_relayed(ice, (unsigned)ice->selected) &&
	       !ice_pair_is_relayed(ice, idx);
}

/* A direct pair succeeded while the nomination waits, maybe for the relay
 * fallback (a late direct pair, e.g. predict's birthday): no reason to
 * wait for it any more; the short wait for better pairs counts from the
 * start of the checks. */
static void nominate_sooner(struct ice *ice)
{
	double wait = ice->t0 + ice->p.nominate_after_ms / 1000.0 - ev_now(ice->loop);

	if (wait < 0)
		wait = 0;
	if (ev_timer_remaining(ice->loop, &ice->nominate) <= wait)
		return;
	ev_timer_stop(ice->loop, &ice->nominate);
	ev_timer_set(&ice->nominate, wait, 0.);
	ev_timer_start(ice->loop, &ice->nominate);
}

static void check_success(struct ice *ice, struct ice_check *ck, const struct stun_txn_result *r)
{
	unsigned idx = ck->idx;
	const stun_sockaddr *remote = &ice->cl.remote[ice->cl.pairs[idx].remote].addr;

	/* s7.2.5.2.1: the response must come from where the check went */
	if (!r->from || !stun_sockaddr_equal(r->from, remote)) {
		ice->st.checks_failed++;
		ice_checklist_result(&ice->cl, idx, false);
		return;
	}
	ice->st.checks_ok++;
	ice_checklist_result(&ice->cl, idx, true);
	if (stun_msg_has(r->msg, STUN_ATTR_XOR_MAPPED_ADDRESS))
		ice->mapped[idx] = r->msg->xor_mapped; /* for predict_probe_selected() */
	if (ck->nominating || (!ice->cl.controlling && ice->use_cand_seen[idx])) {
		select_pair(ice, idx);
		return;
	}
	/* on a relay: the first direct pair that opens takes over */
	if (ice->state == ICE_CONNECTED && ice->cl.controlling && upgrading_to(ice, idx)) {
		send_check(ice, idx, true);
		return;
	}
	/* s8.1.1: the controlling agent nominates once it has a valid pair;
	 * a short wait lets better pairs in flight succeed first */
	if (ice->cl.controlling && !ice->nominated && !ev_is_active(&ice->nominate)) {
		ev_timer_set(&ice->nominate, ice->p.nominate_after_ms / 1000.0, 0.);
		ev_timer_start(ice->loop, &ice->nominate);
	} else if (ice->cl.controlling && !ice->nominated && !ice_pair_is_relayed(ice, idx)) {
		nominate_sooner(ice);
	}
}

static void check_cb(struct stun_client *c, const struct stun_txn_result *r, void *arg)
{
	struct ice_check *ck = arg;
	struct ice *ice = ck->ice;

	(void)c;
	ck->active = false;
	if (ck->consent) {
		consent_result(ice, r);
		return;
	}
	if (r->status == STUN_TXN_CANCELLED || ice->state == ICE_FAILED)
		return;
	if (r->status == STUN_TXN_SUCCESS) {
		check_success(ice, ck, r);
	} else if (r->status == STUN_TXN_ERROR_RESP && r->code == STUN_ERR_ROLE_CONFLICT) {
		role_conflict(ice, ck->idx);
	} else {
		ice->st.checks_failed++;
		ice_checklist_result(&ice->cl, ck->idx, false);
		if (ck->nominating)
			ice->nominated = false; /* nominate another valid pair */
		say(ice, "check failed: %s", stun_txn_status_str(r->status));
	}
	if (ice->state == ICE_CHECKING && ice->cl.controlling && !ice->nominated &&
	    !ev_is_active(&ice->nominate) && ice_checklist_best_valid(&ice->cl) >= 0) {
		ev_timer_set(&ice->nominate, 0., 0.);
		ev_timer_start(ice->loop, &ice->nominate);
	}
	maybe_failed(ice);
}

static void nominate_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ice *ice = w->data;
	int best = ice_checklist_best_valid(&ice->cl);

	(void)revents;
	if (best < 0 || ice->nominated || !ice->cl.controlling || ice->state != ICE_CHECKING)
		return;
	/* relay fallback: a relayed pair only once direct ones had their time */
	double wait = ice->t0 + ice->p.relay_fallback_ms / 1000.0 - ev_now(loop);
	if (ice_pair_is_relayed(ice, (unsigned)best) && direct_pending(ice) && wait > 0) {
		ev_timer_set(&ice->nominate, wait, 0.);
		ev_timer_start(loop, &ice->nominate);
		return;
	}
	ice->nominated = true;
	if (send_check(ice, (unsigned)best, true) < 0)
		ice->nominated = false;
}

/* s6.1.4.2: one check per tick of Ta. */
static void ta_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ice *ice = w->data;
	int i;

	(void)revents;
	if (ice->state == ICE_CONNECTED && !upgrading(ice)) {
		ev_timer_stop(loop, w);
		return;
	}
	if (ice->state != ICE_CHECKING && ice->state != ICE_CONNECTED)
		return;
	i = ice_checklist_next(&ice->cl);
	if (i >= 0) {
		bool nom = ice->checks[i].renominate && ice->cl.controlling;
		ice->checks[i].renominate = false;
		send_check(ice, (unsigned)i, nom);
	}
	maybe_failed(ice);
}

/* Connected over the relay, Ta stopped once every direct pair had failed:
 * a new direct pair (peer-reflexive, or checked again) starts it again. */
static void ta_wake(struct ice *ice)
{
	if (ev_is_active(&ice->ta))
		return;
	ev_timer_set(&ice->ta, 0., ice->p.ta_ms / 1000.0);
	ev_timer_start(ice->loop, &ice->ta);
}

/* ---- answering checks (s7.3) ---- */

struct answer {
	const stun_sockaddr *mapped;
};

static void answer_attrs(struct stun_builder *b, void *arg)
{
	const struct answer *a = arg;

	if (a->mapped)
		stun_build_xor_addr(b, STUN_ATTR_XOR_MAPPED_ADDRESS, a->mapped);
}

static void respond(struct ice *ice, const struct stun_msg *m, const stun_sockaddr *to,
		    uint16_t code, bool with_mi, bool via_relay)
{
	struct answer a = { .mapped = code ? NULL : to };
	uint8_t buf[1500];
	int n = stun_client_build_response(m, code, answer_attrs, &a, with_mi ? ice->lkey : NULL,
					   ice->lkeylen, buf, sizeof(buf));

	if (n < 0)
		return;
	if (via_relay)
		turn_client_send(ice->turn, to, buf, (size_t)n);
	else
		stun_client_send(ice->sc, to, buf, (size_t)n);
}

/* s9.1.3 (RFC 8489): USERNAME "LFRAG:RFRAG" and MESSAGE-INTEGRITY with our
 * password. Returns 0 or the error code to answer with. */
static uint16_t check_auth(struct ice *ice, const struct stun_msg *m)
{
	size_t ul = strlen(ice->local.ufrag);

	if (!stun_msg_has(m, STUN_ATTR_USERNAME) || !stun_msg_has(m, STUN_ATTR_MESSAGE_INTEGRITY))
		return STUN_ERR_BAD_REQUEST;
	if (m->username.len <= ul || memcmp(m->username.p, ice->local.ufrag, ul) ||
	    m->username.p[ul] != ':')
		return STUN_ERR_UNAUTHORIZED;
	if (stun_msg_verify_mi(m, ice->lkey, ice->lkeylen) != 0)
		return STUN_ERR_UNAUTHORIZED;
	if (!stun_msg_has(m, STUN_ATTR_PRIORITY))
		return STUN_ERR_BAD_REQUEST; /* s7.3: PRIORITY is mandatory */
	return 0;
}

/* s7.3.1.1: returns true if we answer 487 (we keep our role). */
static bool role_check(struct ice *ice, const struct stun_msg *m)
{
	bool ctl = stun_msg_has(m, STUN_ATTR_ICE_CONTROLLING);
	bool ctd = stun_msg_has(m, STUN_ATTR_ICE_CONTROLLED);

	if (ice->cl.controlling && ctl) {
		if (ice->p.tie_breaker >= m->ice_controlling)
			return true;
		ice_checklist_set_role(&ice->cl, false);
	} else if (!ice->cl.controlling && ctd) {
		if (ice->p.tie_breaker < m->ice_controlled)
			return true;
		ice_checklist_set_role(&ice->cl, true);
	} else {
		return false;
	}
	ice->st.role_conflicts++;
	say(ice, "role conflict: switched role");
	return false;
}

static int remote_index(const struct ice *ice, const stun_sockaddr *a)
{
	for (unsigned i = 0; i < ice->cl.n_remote; i++)
		if (stun_sockaddr_equal(&ice->cl.remote[i].addr, a))
			return (int)i;
	return -1;
}

/* The best pair towards remote index r from the socket (any host base: we
 * have one socket) or from the relayed candidate. */
static int pair_for_remote(const struct ice *ice, int r, bool via_relay)
{
	int best = -1;

	for (unsigned i = 0; i < ice->cl.n_pairs; i++) {
		const struct ice_pair *p = &ice->cl.pairs[i];
		if (p->remote != r || (ice->cl.local[p->local].type == ICE_CAND_RELAY) != via_relay)
			continue;
		if (best < 0 || p->priority > ice->cl.pairs[best].priority)
			best = (int)i;
	}
	return best;
}

/* s7.3.1.3: a check from an address we do not know: a peer-reflexive
 * remote candidate with the PRIORITY of the check. */
static int learn_prflx(struct ice *ice, const struct stun_msg *m, const stun_sockaddr *from)
{
	struct ice_cand c = { .type = ICE_CAND_PRFLX, .component = 1 };
	int r;

	c.addr = *from;
	c.base = *from;
	c.priority = m->priority;
	ice_foundation(&c, c.foundation); /* an arbitrary, unique foundation */
	ice->st.prflx_remote++;
	r = ice_checklist_add_remote(&ice->cl, &c);
	if (r >= 0)
		permit(ice, (unsigned)r);
	return r;
}

/* s7.3.1.4: the In-Progress check of pair idx is cancelled: "will not
 * retransmit ... will not treat the lack of response to be a failure, but
 * will wait the duration of the transaction timeout for a response" (a
 * response to it still counts: both agents doing this at once must not
 * cancel each other's answers forever). */
static void quiet_check(struct ice *ice, unsigned idx)
{
	struct ice_check *ck = &ice->checks[idx], *q = &ice->quiet[idx];

	if (!ck->active)
		return;
	if (q->active)
		stun_client_cancel(ice->sc, q->tid);
	*q = *ck;
	ck->active = false;
	ck->renominate = ck->nominating;
	if (stun_client_quiet(ice->sc, q->tid, q) < 0)
		q->active = false;
}

/* s7.3.1.4 triggered check and s7.3.1.5 nomination. */
static void after_answer(struct ice *ice, const struct stun_msg *m, const stun_sockaddr *from,
			 bool via_relay)
{
	int r = remote_index(ice, from), idx;

	if (r < 0)
		r = learn_prflx(ice, m, from);
	idx = r < 0 ? -1 : pair_for_remote(ice, r, via_relay);
	if (idx < 0)
		return;
	struct ice_pair *p = &ice->cl.pairs[idx];
	bool use = stun_msg_has(m, STUN_ATTR_USE_CANDIDATE) && !ice->cl.controlling;
	if (use)
		ice->use_cand_seen[idx] = true;
	if (p->state == ICE_PAIR_SUCCEEDED) {
		if (use)
			select_pair(ice, (unsigned)idx);
		return;
	}
	if (ice->state != ICE_CHECKING && !(ice->state == ICE_CONNECTED && upgrading(ice)))
		return;
	ice->st.triggered++;
	/* s7.3.1.4: an In-Progress pair gets a new check now rather than
	 * waiting for the retransmission of its first one (lost e.g. on a
	 * relay before the peer's permission); the old transaction is
	 * cancelled but still heard (quiet_check) */
	if (ice_checklist_trigger(&ice->cl, (unsigned)idx))
		quiet_check(ice, (unsigned)idx);
	ta_wake(ice);
}

static void handle_check(struct ice *ice, const struct stun_msg *m, const stun_sockaddr *from,
			 bool via_relay)
{
	uint16_t code = check_auth(ice, m);

	ice->st.checks_received++;
	if (code) {
		ice->st.bad_auth++;
		respond(ice, m, from, code, false, via_relay); /* s9.1.3: no MI */
		return;
	}
	if (role_check(ice, m)) {
		respond(ice, m, from, STUN_ERR_ROLE_CONFLICT, true, via_relay);
		return;
	}
	respond(ice, m, from, 0, true, via_relay);
	if (ice->have_remote && ice->state != ICE_FAILED)
		after_answer(ice, m, from, via_relay);
}

bool ice_input(struct ice *ice, const uint8_t *buf, size_t len, const stun_sockaddr *from,
	       const struct stun_msg *m)
{
	if (m) {
		if (m->method != STUN_METHOD_BINDING)
			return false;
		if (m->cls == STUN_CLASS_REQUEST)
			handle_check(ice, m, from, false);
		return true; /* indications (keepalives) and stray responses too */
	}
	if (remote_index(ice, from) < 0)
		return false;
	if (ice->cbs.data)
		ice->cbs.data(ice, buf, len, from, ice->cbs.arg);
	return true;
}

void ice_input_relayed(struct ice *ice, const uint8_t *buf, size_t len,
		       const stun_sockaddr *peer)
{
	struct stun_msg m;

	if (stun_demux(buf, len) == STUN_DEMUX_STUN && stun_msg_parse(&m, buf, len) == 0) {
		if (m.method != STUN_METHOD_BINDING)
			return;
		if (m.cls == STUN_CLASS_REQUEST)
			handle_check(ice, &m, peer, true);
		else if (m.cls == STUN_CLASS_SUCCESS || m.cls == STUN_CLASS_ERROR)
			stun_client_inject(ice->sc, buf, len, peer);
		return;
	}
	if (remote_index(ice, peer) >= 0 && ice->cbs.data)
		ice->cbs.data(ice, buf, len, peer, ice->cbs.arg);
}

/* ---- set-up ---- */

int ice_new(struct stun_client *sc, const struct ice_params *p, const struct ice_creds *local,
	    const struct ice_cbs *cbs, struct ice **out)
{
	struct ice *ice = calloc(1, sizeof(*ice));
	int n;

	if (!ice)
		return -ENOMEM;
	ice->sc = sc;
	ice->loop = stun_client_loop(sc);
	ice->p = *p;
	if (!ice->p.ta_ms)
		ice->p.ta_ms = ICE_TA_MS;
	if (ice->p.ta_ms < ICE_TA_MIN_MS)
		ice->p.ta_ms = ICE_TA_MIN_MS;
	if (!ice->p.nominate_after_ms)
		ice->p.nominate_after_ms = NOMINATE_AFTER_MS;
	if (!ice->p.check_rc)
		ice->p.check_rc = CHECK_RC;
	if (!ice->p.check_rm)
		ice->p.check_rm = CHECK_RM;
	if (!ice->p.fail_after_ms)
		ice->p.fail_after_ms = FAIL_AFTER_MS;
	if (!ice->p.relay_fallback_ms)
		ice->p.relay_fallback_ms = RELAY_FALLBACK_MS;
	ice->local = *local;
	ice->cl.controlling = p->controlling;
	n = stun_key_short_term(local->pwd, ice->lkey, sizeof(ice->lkey));
	if (n < 0) {
		free(ice);
		return n;
	}
	ice->lkeylen = (size_t)n;
	if (cbs)
		ice->cbs = *cbs;
	ice->selected = -1;
	ev_timer_init(&ice->ta, ta_cb, 0., ice->p.ta_ms / 1000.0);
	ice->ta.data = ice;
	ev_timer_init(&ice->nominate, nominate_cb, 0., 0.);
	ice->nominate.data = ice;
	if (!ice->p.consent_interval_ms)
		ice->p.consent_interval_ms = CONSENT_INTERVAL_MS;
	if (ice->p.consent_interval_ms < CONSENT_INTERVAL_MIN_MS) /* s5.1 MUST NOT */
		ice->p.consent_interval_ms = CONSENT_INTERVAL_MIN_MS;
	if (!ice->p.consent_timeout_ms)
		ice->p.consent_timeout_ms = CONSENT_TIMEOUT_MS;
	ev_timer_init(&ice->consent, consent_cb, 0., 0.);
	ice->consent.data = ice;
	ev_timer_init(&ice->expiry, expiry_cb, 0., 0.);
	ice->expiry.data = ice;
	*out = ice;
	return 0;
}

void ice_free(struct ice *ice)
{
	if (!ice)
		return;
	ev_timer_stop(ice->loop, &ice->ta);
	ev_timer_stop(ice->loop, &ice->nominate);
	ev_timer_stop(ice->loop, &ice->consent);
	ev_timer_stop(ice->loop, &ice->expiry);
	if (ice->consent_ck.active)
		stun_client_cancel(ice->sc, ice->consent_ck.tid);
	for (unsigned i = 0; i < ice->cl.n_pairs; i++) {
		if (ice->checks[i].active)
			stun_client_cancel(ice->sc, ice->checks[i].tid);
		if (ice->quiet[i].active)
			stun_client_cancel(ice->sc, ice->quiet[i].tid);
	}
	release_turn(ice);
	free(ice);
}

int ice_add_local(struct ice *ice, const struct ice_cand *c)
{
	if (ice->cl.n_local >= ICE_MAX_CANDS)
		return -ENOSPC;
	ice->cl.local[ice->cl.n_local++] = *c;
	ice->cl.n_local = ice_cands_eliminate_redundant(ice->cl.local, ice->cl.n_local);
	return 0;
}

static void add_host(struct ice *ice, const stun_sockaddr *a, uint16_t local_pref)
{
	struct ice_cand c = { .type = ICE_CAND_HOST, .component = 1 };

	c.addr = *a;
	c.base = *a;
	ice_cand_finish(&c, local_pref);
	ice_add_local(ice, &c);
}

static bool is_wildcard(const stun_sockaddr *a)
{
	if (a->sa.sa_family == AF_INET)
		return a->in4.sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&a->in6.sin6_addr);
}

static bool is_loopback_addr(const stun_sockaddr *a)
{
	if (a->sa.sa_family == AF_INET)
		return (ntohl(a->in4.sin_addr.s_addr) >> 24) == 127;
	return a->sa.sa_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&a->in6.sin6_addr);
}

int ice_gather_host(struct ice *ice)
{
	return ice_gather_host_for(ice, NULL);
}

/* s5.1.1.1: one host candidate per usable interface address
 * (ice_host_addr_usable) when the socket is bound to a wildcard. */
int ice_gather_host_for(struct ice *ice, const stun_sockaddr *server)
{
	bool lo = server && is_loopback_addr(server);
	const stun_sockaddr *local = stun_client_bound(ice->sc);
	struct ifaddrs *ifs, *ifa;
	uint16_t pref = 65535;

	if (!is_wildcard(local)) {
		add_host(ice, local, pref);
		return 0;
	}
	if (getifaddrs(&ifs) < 0)
		return -errno;
	for (ifa = ifs; ifa; ifa = ifa->ifa_next) {
		if (!ice_host_addr_usable(ifa->ifa_addr, ifa->ifa_flags, local->sa.sa_family, lo))
			continue;
		stun_sockaddr a = { 0 };
		memcpy(&a, ifa->ifa_addr, stun_sockaddr_len((const stun_sockaddr *)ifa->ifa_addr));
		if (a.sa.sa_family == AF_INET)
			a.in4.sin_port = local->in4.sin_port;
		else
			a.in6.sin6_port = local->in6.sin6_port;
		add_host(ice, &a, pref--);
	}
	freeifaddrs(ifs);
	return 0;
}

unsigned ice_local_candidates(const struct ice *ice, const struct ice_cand **out)
{
	*out = ice->cl.local;
	return ice->cl.n_local;
}

int ice_set_remote(struct ice *ice, const struct ice_creds *remote,
		   const struct ice_cand *cands, unsigned n)
{
	int k;

	if (n > ICE_MAX_CANDS)
		n = ICE_MAX_CANDS;
	k = stun_key_short_term(remote->pwd, ice->rkey, sizeof(ice->rkey));
	if (k < 0)
		return k;
	ice->rkeylen = (size_t)k;
	release_turn(ice); /* held for the candidates being replaced */
	ice->remote = *remote;
	memcpy(ice->cl.remote, cands, n * sizeof(*cands));
	ice->cl.n_remote = n;
	ice->have_remote = true;
	return 0;
}

int ice_start(struct ice *ice)
{
	if (!ice->have_remote)
		return -EINVAL;
	ice_checklist_form(&ice->cl);
	memset(ice->checks, 0, sizeof(ice->checks));
	memset(ice->quiet, 0, sizeof(ice->quiet));
	for (unsigned i = 0; i < ice->cl.n_remote; i++)
		permit(ice, i);
	ice->t0 = ev_now(ice->loop);
	say(ice, "%u local, %u remote candidates, %u pairs", ice->cl.n_local, ice->cl.n_remote,
	    ice->cl.n_pairs);
	set_state(ice, ICE_CHECKING);
	ev_timer_set(&ice->ta, 0., ice->p.ta_ms / 1000.0);
	ev_timer_start(ice->loop, &ice->ta);
	return 0;
}

int ice_send(struct ice *ice, const void *buf, size_t len)
{
	if (ice->state != ICE_CONNECTED || ice->selected < 0)
		return -ENOTCONN;
	const struct ice_pair *p = &ice->cl.pairs[ice->selected];
	if (ice->turn && ice->cl.local[p->local].type == ICE_CAND_RELAY)
		return turn_client_send(ice->turn, &ice->cl.remote[p->remote].addr, buf, len);
	return stun_client_send(ice->sc, &ice->cl.remote[p->remote].addr, buf, len);
}

int ice_set_relay(struct ice *ice, struct turn_client *turn)
{
	struct ice_cand c = { .type = ICE_CAND_RELAY, .component = 1 };

	if (!turn_client_is_allocated(turn))
		return -ENOTCONN;
	ice->turn = turn;
	c.addr = *turn_client_relayed(turn);
	c.base = c.addr; /* RFC 8445 s5.1.1.2: a relayed candidate is its own base */
	c.server = *turn_client_server(turn);
	ice_cand_finish(&c, 65535);
	return ice_add_local(ice, &c);
}

enum ice_state ice_get_state(const struct ice *ice)
{
	return ice->state;
}

bool ice_is_controlling(const struct ice *ice)
{
	return ice->cl.controlling;
}

const struct ice_cand *ice_selected_local(const struct ice *ice)
{
	return ice->selected < 0 ? NULL : &ice->cl.local[ice->cl.pairs[ice->selected].local];
}

const struct ice_cand *ice_selected_remote(const struct ice *ice)
{
	return ice->selected < 0 ? NULL : &ice->cl.remote[ice->cl.pairs[ice->selected].remote];
}

/* Cancel pair i's transactions on the old socket; true if one was in
 * flight (a nominating one is redone: renominate). */
static bool cancel_pair(struct ice *ice, unsigned i)
{
	struct ice_check *ck = &ice->checks[i], *q = &ice->quiet[i];
	bool was = ck->active || q->active;

	if (q->active)
		stun_client_cancel(ice->sc, q->tid);
	if (ck->active) {
		ck->renominate = ck->nominating;
		stun_client_cancel(ice->sc, ck->tid);
	}
	return was;
}

/* A direct pair towards `toward` is checked at once (the peer's
 * birthday probe came from there: its filter is open for us now); the
 * other direct pairs that have not succeeded, and relayed pairs whose
 * check was in flight, are queued as triggered checks (s7.3.1.4). */
static void recheck_pair(struct ice *ice, unsigned i, bool in_flight, const stun_sockaddr *toward)
{
	struct ice_pair *p = &ice->cl.pairs[i];
	bool relayed = ice_pair_is_relayed(ice, i);

	if (p->state == ICE_PAIR_SUCCEEDED || (relayed && !in_flight))
		return;
	ice->checks[i].prompt = !relayed;
	if (!relayed && toward && stun_sockaddr_equal(&ice->cl.remote[p->remote].addr, toward)) {
		bool nom = ice->checks[i].renominate && ice->cl.controlling;
		ice->checks[i].renominate = false;
		p->state = ICE_PAIR_IN_PROGRESS;
		send_check(ice, i, nom);
		return;
	}
	ice_checklist_trigger(&ice->cl, i);
}

int ice_move_socket(struct ice *ice, struct stun_client *sc, const stun_sockaddr *toward)
{
	bool in_flight[ICE_MAX_PAIRS];

	if (ice->state != ICE_CHECKING && !(ice->state == ICE_CONNECTED && ice->selected >= 0 &&
					     ice_pair_is_relayed(ice, (unsigned)ice->selected)))
		return -EINVAL;
	/* every transaction lives on one stun_client (relayed responses are
	 * injected into ice->sc): those in flight on the old one are redone */
	for (unsigned i = 0; i < ice->cl.n_pairs; i++)
		in_flight[i] = cancel_pair(ice, i);
	if (ice->consent_ck.active) /* the next consent check goes from sc */
		stun_client_cancel(ice->sc, ice->consent_ck.tid);
	ice->sc = sc;
	for (unsigned i = 0; i < ice->cl.n_pairs; i++)
		recheck_pair(ice, i, in_flight[i], toward);
	ta_wake(ice);
	return 0;
}

const stun_sockaddr *ice_selected_mapped(const struct ice *ice)
{
	if (ice->selected < 0 || !ice->mapped[ice->selected].sa.sa_family)
		return NULL;
	return &ice->mapped[ice->selected];
}

const struct ice_checklist *ice_get_checklist(const struct ice *ice)
{
	return &ice->cl;
}

const struct ice_stats *ice_get_stats(const struct ice *ice)
{
	return &ice->st;
}
