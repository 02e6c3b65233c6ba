/* rdv_peer: drives client/rendezvous_client against a real stund for the
 * integration tests (tests/integration/test_rendezvous_client.py).
 *
 *   rdv_peer HOST:PORT listen ID [LIFETIME] [decline]
 *   rdv_peer HOST:PORT connect ID
 *
 * Credentials come from RDV_USER and RDV_PASSWORD. One line per event on
 * stdout:
 *   registered ID mapped=IP:PORT lifetime=N     (listen; then serves offers)
 *   register-error CODE REASON                  (listen; exit 1)
 *   offer id=ID from=USER peer=IP:PORT cands=N ufrag=U tie=T
 *   answered status=N
 *   answer peer=IP:PORT mapped=IP:PORT cands=N ufrag=U pwd=P tie=T cand0=TYPE,IP:PORT,PRIO,F
 *   connect-error CODE REASON                   (connect; exit 2)
 * listen runs until SIGTERM. */
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rendezvous_client.h"
#include "stun_client.h"

struct peer {
	struct ev_loop *loop;
	struct stun_client *sc;
	struct rdv_client *rc;
	const char *id;
	bool decline;
	int exit_code;
};

static char *addr(const stun_sockaddr *a, char *buf, size_t cap)
{
	return stun_sockaddr_str(a, buf, cap);
}

/* Our session: one host candidate, the socket's own address. */
static void our_session(struct peer *p, struct rdv_session *s, const char *ufrag, uint64_t tie)
{
	memset(s, 0, sizeof(*s));
	s->n_cand = 1;
	s->cand[0].type = RDV_CAND_HOST;
	s->cand[0].transport = RDV_TRANSPORT_UDP;
	s->cand[0].component = 1;
	s->cand[0].priority = 2130706431;
	s->cand[0].addr = *stun_client_local(p->sc);
	strcpy(s->cand[0].foundation, "h1");
	snprintf(s->ufrag, sizeof(s->ufrag), "%s", ufrag);
	snprintf(s->pwd, sizeof(s->pwd), "%s0123456789abcdefghijk", ufrag);
	s->tie_breaker = tie;
}

static void on_answered(struct rdv_client *rc, const struct rdv_result *r, void *arg)
{
	(void)rc;
	(void)arg;
	printf("answered status=%d\n", r->status);
	fflush(stdout);
}

static void on_offer(struct rdv_client *rc, const struct rdv_offer *o, void *arg)
{
	struct peer *p = arg;
	struct rdv_session ans;
	char a[64];

	printf("offer id=%s from=%s peer=%s cands=%u ufrag=%s tie=%llu\n", o->id, o->from,
	       o->has_peer ? addr(&o->peer, a, sizeof(a)) : "-", o->session.n_cand,
	       o->session.ufrag, (unsigned long long)o->session.tie_breaker);
	fflush(stdout);
	if (p->decline) {
		rdv_client_decline(rc, o->offer_id, 486, "Busy Here", on_answered, p);
		return;
	}
	our_session(p, &ans, "ansA", 42);
	rdv_client_answer(rc, o->offer_id, &ans, on_answered, p);
}

static void on_registered(struct rdv_client *rc, const struct rdv_result *r, void *arg)
{
	struct peer *p = arg;
	char a[64];

	(void)rc;
	if (r->status) {
		printf("register-error %d %s\n", r->status, r->reason);
		fflush(stdout);
		p->exit_code = 1;
		ev_break(p->loop, EVBREAK_ALL);
		return;
	}
	printf("registered %s mapped=%s lifetime=%u\n", p->id,
	       r->has_mapped ? addr(&r->mapped, a, sizeof(a)) : "-", r->lifetime);
	fflush(stdout);
}

static void on_answer(struct rdv_client *rc, const struct rdv_result *r, void *arg)
{
	struct peer *p = arg;
	const struct rdv_session *s = r->answer;
	char a[64], b[64], c[64];

	(void)rc;
	ev_break(p->loop, EVBREAK_ALL);
	if (r->status || !s) {
		printf("connect-error %d %s\n", r->status, r->reason);
		p->exit_code = 2;
		return;
	}
	printf("answer peer=%s mapped=%s cands=%u ufrag=%s pwd=%s tie=%llu cand0=%s,%s,%u,%s\n",
	       r->has_peer ? addr(&r->peer, a, sizeof(a)) : "-",
	       r->has_mapped ? addr(&r->mapped, b, sizeof(b)) : "-", s->n_cand, s->ufrag, s->pwd,
	       (unsigned long long)s->tie_breaker,
	       s->n_cand ? rdv_cand_type_name(s->cand[0].type) : "-",
	       s->n_cand ? addr(&s->cand[0].addr, c, sizeof(c)) : "-",
	       s->n_cand ? s->cand[0].priority : 0, s->n_cand ? s->cand[0].foundation : "-");
	p->exit_code = 0;
}

static void on_term(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

static int start(struct peer *p, const char *cmd, int argc, char **argv)
{
	struct rdv_session offer;

	if (!strcmp(cmd, "listen")) {
		p->decline = argc > 5 && !strcmp(argv[5], "decline");
		rdv_client_on_offer(p->rc, on_offer, p);
		return rdv_client_register(p->rc, p->id, argc > 4 ? (uint32_t)atoi(argv[4]) : 0,
					   on_registered, p);
	}
	if (!strcmp(cmd, "connect")) {
		our_session(p, &offer, "offB", 7);
		return rdv_client_connect(p->rc, p->id, &offer, on_answer, p);
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct peer p = { .exit_code = 3 };
	stun_sockaddr server, any;
	struct stun_cred cred;
	ev_signal sig;

	if (argc < 4 || stun_sockaddr_parse(&server, argv[1], 3478)) {
		fprintf(stderr, "usage: rdv_peer HOST:PORT listen|connect ID [LIFETIME] [decline]\n");
		return 2;
	}
	stun_cred_init(&cred, getenv("RDV_USER") ? getenv("RDV_USER") : "",
		       getenv("RDV_PASSWORD") ? getenv("RDV_PASSWORD") : "");
	stun_sockaddr_parse(&any, server.sa.sa_family == AF_INET ? "127.0.0.1:0" : "[::1]:0", 0);
	p.loop = ev_default_loop(0);
	p.id = argv[3];
	if (stun_client_open(p.loop, &any, &p.sc) || rdv_client_new(p.sc, &server, &cred, &p.rc))
		return 3;
	if (start(&p, argv[2], argc, argv)) {
		fprintf(stderr, "rdv_peer: cannot start %s\n", argv[2]);
		return 2;
	}
	ev_signal_init(&sig, on_term, SIGTERM);
	ev_signal_start(p.loop, &sig);
	ev_run(p.loop, 0);
	fflush(stdout);
	if (!strcmp(argv[2], "listen") && p.exit_code == 3)
		p.exit_code = 0;
	ev_signal_stop(p.loop, &sig);
	rdv_client_free(p.rc);
	stun_client_free(p.sc);
	return p.exit_code;
}
