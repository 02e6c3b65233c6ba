/* ice_pair: two ICE sessions (client/ice.c) in one process on loopback,
 * each on its own UDP socket, candidates handed over in memory. They check,
 * nominate, then exchange one datagram each way. Prints one JSON line.
 *
 *   ice_pair [--conflict] [--bad-password] [--dead-candidate] [--prflx]
 *            [--timeout SECONDS] [-v]
 *
 * --conflict        both start controlling: the tie-breaker decides (487)
 * --bad-password    a has a wrong password for b: no pair may succeed for a
 * --dead-candidate  a also gets a higher-priority candidate of b that
 *                   nobody listens on
 * --prflx           a gets no usable candidate of b: b's checks make b a
 *                   peer-reflexive candidate of a (triggered checks)
 * --consent-timeout MS   RFC 7675 consent timeout of both sides
 * --hold SECONDS    after the data, stay connected this long (consent)
 * --kill-b          after the data, b goes away: a must lose consent
 * --relay-a HOST:PORT   a allocates a TURN relay there (user/password from
 *                   NATCLIENT_USER / NATCLIENT_PASSWORD) and offers only the
 *                   relayed candidate: every check and datagram of a goes
 *                   through the relay
 * --host-a          with --relay-a: a offers its host candidate too
 * --drop-direct-ms N    b drops what comes straight from a's socket for N
 *                   ms: the relay must carry the session first, then the
 *                   direct path take over */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ev.h>

#include "ice.h"
#include "stun_client.h"

struct side {
	const char *name;
	struct stun_client *sc;
	struct turn_client *turn;
	struct stun_cred cred;
	int alloc_status;
	bool alloc_done;
	struct ice *ice;
	struct ice_creds creds;
	bool got_data;
	ev_tstamp connected_at, disconnected_at;
};

static struct side A = { .name = "a" }, B = { .name = "b" };
static ev_tstamp t0;
static double hold_s;
static bool kill_b;
static unsigned consent_timeout_ms;
static ev_timer hold_w;
static bool host_a;
static double drop_direct_s;
static char paths[2][64];  /* a's and b's path history: "relay,direct" */

static void hold_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

static void other_cb(struct stun_client *c, const uint8_t *buf, size_t len,
		     const stun_sockaddr *from, const struct stun_msg *m, void *arg)
{
	struct side *s = arg;

	(void)c;
	if (s == &B && drop_direct_s > 0 && ev_now(stun_client_loop(c)) - t0 < drop_direct_s &&
	    stun_sockaddr_equal(from, stun_client_local(A.sc)))
		return;
	if (s->turn && turn_client_input(s->turn, buf, len, from, m))
		return;
	if (s->ice)
		ice_input(s->ice, buf, len, from, m);
}

static void turn_data(struct turn_client *t, const stun_sockaddr *peer, const uint8_t *data,
		      size_t len, bool via_channel, void *arg)
{
	struct side *s = arg;

	(void)t;
	(void)via_channel;
	ice_input_relayed(s->ice, data, len, peer);
}

static void turn_allocated(struct turn_client *t, int status, void *arg)
{
	struct side *s = arg;

	(void)t;
	s->alloc_status = status;
	s->alloc_done = true;
}

/* Allocate on the TURN server and wait for the outcome. */
static int allocate(struct ev_loop *loop, struct side *s, const char *server)
{
	stun_sockaddr srv;
	struct turn_client_cbs cbs = { .allocated = turn_allocated, .data = turn_data, .arg = s };
	const char *u = getenv("NATCLIENT_USER"), *pw = getenv("NATCLIENT_PASSWORD");

	if (stun_sockaddr_parse(&srv, server, 3478) < 0 || !u || !pw)
		return -1;
	stun_cred_init(&s->cred, u, pw);
	if (turn_client_new(s->sc, &srv, &s->cred, &cbs, &s->turn) < 0 ||
	    turn_client_allocate(s->turn, 0) < 0)
		return -1;
	while (!s->alloc_done)
		ev_run(loop, EVRUN_ONCE);
	if (s->alloc_status) {
		fprintf(stderr, "ice_pair: Allocate: %s\n", turn_client_strerror(s->alloc_status));
		return -1;
	}
	return ice_set_relay(s->ice, s->turn);
}

static void maybe_done(struct ev_loop *loop)
{
	if (!A.got_data || !B.got_data || ev_is_active(&hold_w))
		return;
	if (kill_b) {
		/* b vanishes (its socket closes): a's consent checks go nowhere */
		ice_free(B.ice);
		B.ice = NULL;
		stun_client_free(B.sc);
		B.sc = NULL;
		return;
	}
	if (hold_s > 0) {
		ev_timer_init(&hold_w, hold_cb, hold_s, 0.);
		ev_timer_start(loop, &hold_w);
		return;
	}
	ev_break(loop, EVBREAK_ALL);
}

static void state_cb(struct ice *ice, enum ice_state st, void *arg)
{
	struct side *s = arg;

	if (st == ICE_DISCONNECTED) {
		s->disconnected_at = ev_now(stun_client_loop(s->sc));
		if (kill_b && s == &A)
			ev_break(stun_client_loop(s->sc), EVBREAK_ALL);
	}
	if (st == ICE_CONNECTED) {
		char *h = paths[s == &B];
		const struct ice_cand *l = ice_selected_local(ice), *r = ice_selected_remote(ice);
		bool relayed = l->type == ICE_CAND_RELAY || r->type == ICE_CAND_RELAY;
		size_t hl = strlen(h);
		snprintf(h + hl, sizeof(paths[0]) - hl, "%s%s", hl ? "," : "", relayed ? "relay" : "direct");
		if (s->connected_at)
			return; /* a switch: the data went already */
		s->connected_at = ev_now(stun_client_loop(s->sc));
		if (s == &A)
			ice_send(ice, "ping", 4);
		if (s == &B && B.got_data)
			ice_send(ice, "pong", 4);
	}
	if (st == ICE_FAILED && B.ice && ice_get_state(A.ice) != ICE_CHECKING &&
	    ice_get_state(B.ice) != ICE_CHECKING)
		ev_break(stun_client_loop(s->sc), EVBREAK_ALL);
}

static void data_cb(struct ice *ice, const uint8_t *buf, size_t len,
		    const stun_sockaddr *from, void *arg)
{
	struct side *s = arg;

	(void)from;
	if (s == &B && len == 4 && !memcmp(buf, "ping", 4)) {
		B.got_data = true;
		/* before b's own check succeeds it may not send yet (RFC 7675
		 * s5.1): then it answers when it is connected */
		if (ice_get_state(ice) == ICE_CONNECTED)
			ice_send(ice, "pong", 4);
	} else if (s == &A && len == 4 && !memcmp(buf, "pong", 4)) {
		A.got_data = true;
	}
	maybe_done(stun_client_loop(s->sc));
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

static int open_side(struct ev_loop *loop, struct side *s, bool controlling, int verbose,
		     const char *relay)
{
	stun_sockaddr lo;
	struct ice_params p = { .controlling = controlling,
				.tie_breaker = ice_tie_breaker_random(), .verbose = verbose,
				.consent_timeout_ms = consent_timeout_ms };
	struct ice_cbs cbs = { .state = state_cb, .data = data_cb, .arg = s };

	stun_sockaddr_parse(&lo, "127.0.0.1:0", 0);
	if (stun_client_open(loop, &lo, &s->sc) < 0)
		return -1;
	stun_client_set_other(s->sc, other_cb, s);
	stun_client_set_verbose(s->sc, verbose * 2);
	ice_creds_random(&s->creds);
	if (ice_new(s->sc, &p, &s->creds, &cbs, &s->ice) < 0)
		return -1;
	if (relay) {
		if (host_a && ice_gather_host(s->ice) < 0)
			return -1;
		return allocate(loop, s, relay);
	}
	return ice_gather_host(s->ice);
}

static void print_side(const struct side *s)
{
	static const char *names[] = { "new", "checking", "connected", "failed", "disconnected" };
	char lb[64] = "", rb[64] = "";

	if (!s->ice) {
		printf("\"%s\":{\"state\":\"gone\",\"data\":%s}", s->name,
		       s->got_data ? "true" : "false");
		return;
	}
	const struct ice_cand *l = ice_selected_local(s->ice), *r = ice_selected_remote(s->ice);
	const struct ice_stats *st = ice_get_stats(s->ice);

	if (l)
		stun_sockaddr_str(&l->addr, lb, sizeof(lb));
	if (r)
		stun_sockaddr_str(&r->addr, rb, sizeof(rb));
	printf("\"%s\":{\"state\":\"%s\",\"role\":\"%s\",\"local\":\"%s\",\"remote\":\"%s\","
	       "\"local_type\":\"%s\",\"remote_type\":\"%s\",\"data\":%s,\"ms\":%d,\"checks_sent\":%llu,"
	       "\"triggered\":%llu,\"role_conflicts\":%llu,\"prflx\":%llu,\"bad_auth\":%llu,"
	       "\"consent_ok\":%llu,\"disconnected_ms\":%d,\"paths\":\"%s\"}",
	       s->name, names[ice_get_state(s->ice)],
	       ice_is_controlling(s->ice) ? "controlling" : "controlled", lb, rb,
	       l ? ice_cand_type_str(l->type) : "", r ? ice_cand_type_str(r->type) : "", s->got_data ? "true" : "false",
	       s->connected_at ? (int)((s->connected_at - t0) * 1000) : -1,
	       (unsigned long long)st->checks_sent, (unsigned long long)st->triggered,
	       (unsigned long long)st->role_conflicts, (unsigned long long)st->prflx_remote,
	       (unsigned long long)st->bad_auth, (unsigned long long)st->consent_ok,
	       s->disconnected_at ? (int)((s->disconnected_at - t0) * 1000) : -1, paths[s == &B]);
}

int main(int argc, char **argv)
{
	bool conflict = false, bad_pw = false, dead = false, prflx = false;
	double timeout = 10;
	const char *relay_a = NULL;
	int verbose = 0;
	struct ev_loop *loop = ev_default_loop(0);
	const struct ice_cand *ac, *bc;
	struct ice_cand bcands[ICE_MAX_CANDS];
	unsigned na, nb;
	ev_timer tw;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--conflict")) conflict = true;
		else if (!strcmp(argv[i], "--bad-password")) bad_pw = true;
		else if (!strcmp(argv[i], "--dead-candidate")) dead = true;
		else if (!strcmp(argv[i], "--prflx")) prflx = true;
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) timeout = atof(argv[++i]);
		else if (!strcmp(argv[i], "-v")) verbose = 1;
		else if (!strcmp(argv[i], "--hold") && i + 1 < argc) hold_s = atof(argv[++i]);
		else if (!strcmp(argv[i], "--kill-b")) kill_b = true;
		else if (!strcmp(argv[i], "--relay-a") && i + 1 < argc) relay_a = argv[++i];
		else if (!strcmp(argv[i], "--host-a")) host_a = true;
		else if (!strcmp(argv[i], "--drop-direct-ms") && i + 1 < argc)
			drop_direct_s = atof(argv[++i]) / 1000.0;
		else if (!strcmp(argv[i], "--consent-timeout") && i + 1 < argc)
			consent_timeout_ms = (unsigned)atoi(argv[++i]);
		else { fprintf(stderr, "ice_pair: unknown argument %s\n", argv[i]); return 2; }
	}
	if (open_side(loop, &A, true, verbose, relay_a) < 0 ||
	    open_side(loop, &B, conflict, verbose, NULL) < 0) {
		fprintf(stderr, "ice_pair: set-up failed\n");
		return 1;
	}
	na = ice_local_candidates(A.ice, &ac);
	nb = ice_local_candidates(B.ice, &bc);
	memcpy(bcands, bc, nb * sizeof(*bc));
	if (dead || prflx) {
		/* a candidate of b nobody listens on: port 1 on loopback, above
		 * b's real one (dead) or instead of it (prflx) */
		struct ice_cand d = bcands[0];
		stun_sockaddr_parse(&d.addr, "127.0.0.1:1", 0);
		d.base = d.addr;
		ice_cand_finish(&d, 65535);
		if (prflx) {
			bcands[0] = d;
		} else {
			bcands[0].priority--;
			bcands[nb++] = d;
		}
	}
	struct ice_creds b_for_a = B.creds;
	if (bad_pw)
		strcpy(b_for_a.pwd, "not-the-password-of-b-at-all");
	ice_set_remote(A.ice, &b_for_a, bcands, nb);
	ice_set_remote(B.ice, &A.creds, ac, na);
	t0 = ev_now(loop);
	ice_start(A.ice);
	ice_start(B.ice);
	ev_timer_init(&tw, timeout_cb, timeout, 0.);
	ev_timer_start(loop, &tw);
	ev_run(loop, 0);
	printf("{");
	print_side(&A);
	printf(",");
	print_side(&B);
	printf("}\n");
	ice_free(A.ice);
	ice_free(B.ice);
	turn_client_free(A.turn);
	stun_client_free(A.sc);
	stun_client_free(B.sc);
	return A.got_data && B.got_data ? 0 : 1;
}
