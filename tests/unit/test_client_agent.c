/* Unit tests for client/agent.c: RFC 8445 candidate priorities (s5.1.2),
 * foundations (s5.1.1.3), redundant candidates (s5.1.3), pair priorities
 * (s6.1.2.3), check list forming, pruning and limits (s6.1.2), and the
 * order in which checks are paced out (s6.1.4.2, s14). No network. */
#include <CUnit/Basic.h>
#include <net/if.h>
#include <string.h>

#include "agent.h"
#include "unit_util.h"

static stun_sockaddr A(const char *s)
{
	stun_sockaddr a;

	CU_ASSERT_EQUAL_FATAL(stun_sockaddr_parse(&a, s, 0), 0);
	return a;
}

static struct ice_cand cand(enum ice_cand_type t, const char *addr, const char *base,
			    const char *server, uint16_t local_pref)
{
	struct ice_cand c = { .type = t, .component = 1 };

	c.addr = A(addr);
	c.base = A(base ? base : addr);
	if (server)
		c.server = A(server);
	ice_cand_finish(&c, local_pref);
	return c;
}

static void test_priority(void)
{
	CU_ASSERT_EQUAL(ice_type_pref(ICE_CAND_HOST), 126);
	CU_ASSERT_EQUAL(ice_type_pref(ICE_CAND_PRFLX), 110);
	CU_ASSERT_EQUAL(ice_type_pref(ICE_CAND_SRFLX), 100);
	CU_ASSERT_EQUAL(ice_type_pref(ICE_CAND_RELAY), 0);
	/* 2^24 * 126 + 2^8 * 65535 + (256 - 1) */
	CU_ASSERT_EQUAL(ice_priority(ICE_CAND_HOST, 65535, 1), 2130706431u);
	CU_ASSERT_EQUAL(ice_priority(ICE_CAND_SRFLX, 65535, 1), 1694498815u);
	CU_ASSERT_EQUAL(ice_priority(ICE_CAND_RELAY, 65535, 1), 16777215u);
	CU_ASSERT_EQUAL(ice_priority(ICE_CAND_HOST, 0, 2), (126u << 24) + 254);
	/* prflx above srflx (a MUST), predicted between srflx and relay */
	CU_ASSERT(ice_priority(ICE_CAND_PRFLX, 0, 1) > ice_priority(ICE_CAND_SRFLX, 65535, 1));
	CU_ASSERT(ice_priority(ICE_CAND_PREDICTED, 65535, 1) <
		  ice_priority(ICE_CAND_SRFLX, 0, 1));
	CU_ASSERT(ice_priority(ICE_CAND_PREDICTED, 0, 1) > ice_priority(ICE_CAND_RELAY, 65535, 1));
}

static void test_pair_priority(void)
{
	/* 2^32 * MIN(G,D) + 2 * MAX(G,D) + (G > D ? 1 : 0) */
	CU_ASSERT_EQUAL(ice_pair_priority(10, 20), (10ull << 32) + 40);
	CU_ASSERT_EQUAL(ice_pair_priority(20, 10), (10ull << 32) + 41);
	CU_ASSERT_EQUAL(ice_pair_priority(7, 7), (7ull << 32) + 14);
	uint32_t h = 2130706431u, r = 16777215u;
	CU_ASSERT_EQUAL(ice_pair_priority(h, r), ((uint64_t)r << 32) + 2ull * h + 1);
	/* both agents compute the same value for the same pair */
	CU_ASSERT_EQUAL(ice_pair_priority(h, r), ice_pair_priority(h, r));
	CU_ASSERT(ice_pair_priority(h, r) != ice_pair_priority(r, h));
}

static void test_foundation(void)
{
	struct ice_cand h1 = cand(ICE_CAND_HOST, "10.0.0.2:4000", NULL, NULL, 65535);
	struct ice_cand h2 = cand(ICE_CAND_HOST, "10.0.0.2:4001", NULL, NULL, 65534);
	struct ice_cand h3 = cand(ICE_CAND_HOST, "10.0.0.3:4000", NULL, NULL, 65533);
	struct ice_cand s1 = cand(ICE_CAND_SRFLX, "1.2.3.4:5000", "10.0.0.2:4000", "9.9.9.9:3478", 65535);
	struct ice_cand s2 = cand(ICE_CAND_SRFLX, "1.2.3.4:5001", "10.0.0.2:4001", "9.9.9.9:3479", 65534);
	struct ice_cand s3 = cand(ICE_CAND_SRFLX, "1.2.3.4:5002", "10.0.0.2:4002", "9.9.9.8:3478", 65533);
	struct ice_cand r1 = cand(ICE_CAND_RELAY, "9.9.9.9:6000", NULL, "9.9.9.9:3478", 65535);

	CU_ASSERT_STRING_EQUAL(h1.foundation, h2.foundation); /* ports do not count */
	CU_ASSERT_STRING_NOT_EQUAL(h1.foundation, h3.foundation);
	CU_ASSERT_STRING_EQUAL(s1.foundation, s2.foundation);
	CU_ASSERT_STRING_NOT_EQUAL(s1.foundation, s3.foundation); /* other server IP */
	CU_ASSERT_STRING_NOT_EQUAL(s1.foundation, h1.foundation); /* other type */
	CU_ASSERT_STRING_NOT_EQUAL(r1.foundation, s1.foundation);
	CU_ASSERT(strlen(h1.foundation) >= 1 && strlen(h1.foundation) <= 32);
}

static void test_redundant(void)
{
	/* no NAT: the srflx candidate is the host candidate again; a relayed
	 * candidate is its own base (s5.1.1.2) */
	struct ice_cand c[3] = {
		cand(ICE_CAND_SRFLX, "10.0.0.2:4000", "10.0.0.2:4000", "9.9.9.9:3478", 65535),
		cand(ICE_CAND_HOST, "10.0.0.2:4000", NULL, NULL, 65535),
		cand(ICE_CAND_RELAY, "9.9.9.9:6000", NULL, "9.9.9.9:3478", 65535),
	};
	unsigned n = ice_cands_eliminate_redundant(c, 3);

	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT_EQUAL(c[0].type, ICE_CAND_HOST);
	CU_ASSERT_EQUAL(c[1].type, ICE_CAND_RELAY);
}

/* local: host + srflx (NAT) + relay; remote: host + srflx. */
static void fill(struct ice_checklist *cl, bool controlling)
{
	memset(cl, 0, sizeof(*cl));
	cl->controlling = controlling;
	cl->local[0] = cand(ICE_CAND_HOST, "10.0.0.2:4000", NULL, NULL, 65535);
	cl->local[1] = cand(ICE_CAND_SRFLX, "1.2.3.4:5000", "10.0.0.2:4000", "9.9.9.9:3478", 65535);
	cl->local[2] = cand(ICE_CAND_RELAY, "9.9.9.9:6000", NULL, "9.9.9.9:3478", 65535);
	cl->n_local = 3;
	cl->remote[0] = cand(ICE_CAND_HOST, "192.168.1.5:7000", NULL, NULL, 65535);
	cl->remote[1] = cand(ICE_CAND_SRFLX, "5.6.7.8:7100", "192.168.1.5:7000", "9.9.9.9:3478",
			     65535);
	cl->n_remote = 2;
}

static void test_form(void)
{
	struct ice_checklist cl;

	fill(&cl, true);
	/* 3 x 2 pairs; the 2 with the srflx local collapse onto the host ones */
	CU_ASSERT_EQUAL(ice_checklist_form(&cl), 4);
	for (unsigned i = 1; i < cl.n_pairs; i++)
		CU_ASSERT(cl.pairs[i - 1].priority >= cl.pairs[i].priority);
	for (unsigned i = 0; i < cl.n_pairs; i++)
		CU_ASSERT_NOT_EQUAL(cl.local[cl.pairs[i].local].type, ICE_CAND_SRFLX);
	/* best: host-host; the relayed ones last */
	CU_ASSERT_EQUAL(cl.pairs[0].local, 0);
	CU_ASSERT_EQUAL(cl.pairs[0].remote, 0);
	CU_ASSERT_EQUAL(cl.local[cl.pairs[3].local].type, ICE_CAND_RELAY);
	CU_ASSERT_EQUAL(cl.pairs[0].priority,
			ice_pair_priority(cl.local[0].priority, cl.remote[0].priority));
	/* the controlled side puts the remote candidate in G */
	struct ice_checklist cd;
	fill(&cd, false);
	ice_checklist_form(&cd);
	CU_ASSERT_EQUAL(cd.pairs[0].priority,
			ice_pair_priority(cd.remote[0].priority, cd.local[0].priority));
	/* families do not mix */
	fill(&cl, true);
	cl.remote[2] = cand(ICE_CAND_HOST, "[2001:db8::1]:7000", NULL, NULL, 65534);
	cl.n_remote = 3;
	CU_ASSERT_EQUAL(ice_checklist_form(&cl), 4);
}

static void test_limit(void)
{
	struct ice_checklist cl;

	fill(&cl, true);
	cl.max_pairs = 2;
	CU_ASSERT_EQUAL(ice_checklist_form(&cl), 2);
	CU_ASSERT_EQUAL(cl.pairs[0].remote, 0); /* the highest-priority ones kept */
	CU_ASSERT_EQUAL(cl.local[cl.pairs[0].local].type, ICE_CAND_HOST);
}

static void test_initial_states(void)
{
	struct ice_checklist cl;

	memset(&cl, 0, sizeof(cl));
	cl.controlling = true;
	/* two host candidates on one IP: same foundation */
	cl.local[0] = cand(ICE_CAND_HOST, "10.0.0.2:4000", NULL, NULL, 65535);
	cl.local[1] = cand(ICE_CAND_HOST, "10.0.0.2:4001", NULL, NULL, 65534);
	cl.n_local = 2;
	cl.remote[0] = cand(ICE_CAND_HOST, "192.168.1.5:7000", NULL, NULL, 65535);
	cl.n_remote = 1;
	CU_ASSERT_EQUAL(ice_checklist_form(&cl), 2);
	CU_ASSERT_STRING_EQUAL(cl.pairs[0].foundation, cl.pairs[1].foundation);
	CU_ASSERT_EQUAL(cl.pairs[0].state, ICE_PAIR_WAITING);
	CU_ASSERT_EQUAL(cl.pairs[1].state, ICE_PAIR_FROZEN);
	/* a success unfreezes the same foundation */
	CU_ASSERT_EQUAL(ice_checklist_next(&cl), 0);
	CU_ASSERT_EQUAL(cl.pairs[0].state, ICE_PAIR_IN_PROGRESS);
	/* nothing Waiting, the only Frozen one's foundation is in progress */
	CU_ASSERT_EQUAL(ice_checklist_next(&cl), -1);
	ice_checklist_result(&cl, 0, true);
	CU_ASSERT_EQUAL(cl.pairs[1].state, ICE_PAIR_WAITING);
	CU_ASSERT_EQUAL(ice_checklist_best_valid(&cl), 0);
}

static void test_pacing_order(void)
{
	struct ice_checklist cl;
	int order[8], n = 0, i;

	fill(&cl, true);
	ice_checklist_form(&cl);
	/* every foundation pair starts Waiting here: checks in priority order */
	while ((i = ice_checklist_next(&cl)) >= 0 && n < 8)
		order[n++] = i;
	CU_ASSERT_EQUAL(n, 4);
	for (int k = 0; k < n; k++)
		CU_ASSERT_EQUAL(order[k], k);
	/* s14.3: RTO grows with the checks outstanding, never below 500 ms */
	CU_ASSERT_EQUAL(ice_checklist_rto_ms(&cl, ICE_TA_MS), 50u * 4 * 4);
	for (int k = 0; k < 4; k++)
		ice_checklist_result(&cl, (unsigned)k, false);
	CU_ASSERT_EQUAL(ice_checklist_rto_ms(&cl, ICE_TA_MS), 500);
	CU_ASSERT(ice_checklist_failed(&cl));
	CU_ASSERT_EQUAL(ice_checklist_best_valid(&cl), -1);
}

static void test_triggered(void)
{
	struct ice_checklist cl;

	fill(&cl, true);
	ice_checklist_form(&cl);
	/* a check from the peer on the lowest pair jumps the queue (s6.1.4.2 step 1) */
	ice_checklist_trigger(&cl, 3);
	ice_checklist_trigger(&cl, 3); /* queued once */
	ice_checklist_trigger(&cl, 2);
	CU_ASSERT_EQUAL(ice_checklist_next(&cl), 3);
	CU_ASSERT_EQUAL(ice_checklist_next(&cl), 2);
	CU_ASSERT_EQUAL(ice_checklist_next(&cl), 0);
	CU_ASSERT_EQUAL(ice_checklist_next(&cl), 1);
	CU_ASSERT_EQUAL(ice_checklist_next(&cl), -1);
	/* a failed pair can be re-checked by a trigger */
	ice_checklist_result(&cl, 1, false);
	ice_checklist_trigger(&cl, 1);
	CU_ASSERT_EQUAL(cl.pairs[1].state, ICE_PAIR_WAITING);
	CU_ASSERT_EQUAL(ice_checklist_next(&cl), 1);
	/* find a pair by local base and remote address */
	stun_sockaddr base = A("10.0.0.2:4000"), rem = A("5.6.7.8:7100");
	int k = ice_checklist_find(&cl, &base, &rem);
	CU_ASSERT(k >= 0);
	if (k >= 0)
		CU_ASSERT_EQUAL(cl.pairs[k].remote, 1);
}

/* s7.3.1.4: a check from the peer on an In-Progress pair cancels that
 * transaction and queues a new check at once (Waiting, first in line);
 * a Succeeded pair is not checked again. */
static void test_trigger_in_progress(void)
{
	struct ice_checklist cl;

	fill(&cl, true);
	ice_checklist_form(&cl);
	CU_ASSERT_EQUAL(ice_checklist_next(&cl), 0);
	CU_ASSERT_EQUAL(ice_checklist_next(&cl), 1);
	CU_ASSERT_EQUAL(cl.pairs[1].state, ICE_PAIR_IN_PROGRESS);
	CU_ASSERT_TRUE(ice_checklist_trigger(&cl, 1)); /* caller cancels */
	CU_ASSERT_EQUAL(cl.pairs[1].state, ICE_PAIR_WAITING);
	CU_ASSERT_FALSE(ice_checklist_trigger(&cl, 1)); /* queued once, now Waiting */
	CU_ASSERT_EQUAL(cl.trig_len, 1);
	CU_ASSERT_EQUAL(ice_checklist_next(&cl), 1);    /* before the ordinary 2 */
	CU_ASSERT_EQUAL(cl.pairs[1].state, ICE_PAIR_IN_PROGRESS);
	/* Succeeded: nothing to do */
	ice_checklist_result(&cl, 0, true);
	CU_ASSERT_FALSE(ice_checklist_trigger(&cl, 0));
	CU_ASSERT_EQUAL(cl.pairs[0].state, ICE_PAIR_SUCCEEDED);
	CU_ASSERT_EQUAL(cl.trig_len, 0);
	/* queued, then succeeded before its turn: skipped */
	ice_checklist_trigger(&cl, 1);
	ice_checklist_result(&cl, 1, true);
	CU_ASSERT_EQUAL(ice_checklist_next(&cl), 2);
	CU_ASSERT_EQUAL(cl.pairs[1].state, ICE_PAIR_SUCCEEDED);
}

/* s5.1.1.1: which interface addresses become host candidates */
static void test_host_filter(void)
{
	const unsigned up = IFF_UP | IFF_RUNNING, lo = IFF_UP | IFF_LOOPBACK;
	stun_sockaddr v4 = A("192.168.1.10:0"), v4ll = A("169.254.3.4:0"), v4lo = A("127.0.0.1:0");
	stun_sockaddr v6 = A("[2001:db8::5]:0"), v6ll = A("[fe80::1]:0"), v6lo = A("[::1]:0");
	stun_sockaddr v6ula = A("[fd00::7]:0"), mapped = A("[::ffff:10.0.0.1]:0");

	CU_ASSERT_TRUE(ice_host_addr_usable(&v4.sa, up, AF_INET, false));
	CU_ASSERT_TRUE(ice_host_addr_usable(&v6.sa, up, AF_INET6, false));
	CU_ASSERT_TRUE(ice_host_addr_usable(&v6ula.sa, up, AF_INET6, false));
	/* the socket's family only */
	CU_ASSERT_FALSE(ice_host_addr_usable(&v6.sa, up, AF_INET, false));
	CU_ASSERT_FALSE(ice_host_addr_usable(&v4.sa, up, AF_INET6, false));
	/* down interfaces, link-local, v4-mapped */
	CU_ASSERT_FALSE(ice_host_addr_usable(&v4.sa, 0, AF_INET, false));
	CU_ASSERT_FALSE(ice_host_addr_usable(&v4ll.sa, up, AF_INET, false));
	CU_ASSERT_FALSE(ice_host_addr_usable(&v6ll.sa, up, AF_INET6, false));
	CU_ASSERT_FALSE(ice_host_addr_usable(&mapped.sa, up, AF_INET6, false));
	CU_ASSERT_FALSE(ice_host_addr_usable(NULL, up, AF_INET, false));
	/* loopback: only when the server is on loopback, and then only it */
	CU_ASSERT_FALSE(ice_host_addr_usable(&v4lo.sa, lo, AF_INET, false));
	CU_ASSERT_FALSE(ice_host_addr_usable(&v6lo.sa, lo, AF_INET6, false));
	CU_ASSERT_TRUE(ice_host_addr_usable(&v4lo.sa, lo, AF_INET, true));
	CU_ASSERT_TRUE(ice_host_addr_usable(&v6lo.sa, lo, AF_INET6, true));
	CU_ASSERT_FALSE(ice_host_addr_usable(&v4lo.sa, 0, AF_INET, true));
	CU_ASSERT_FALSE(ice_host_addr_usable(&v4.sa, up, AF_INET, true));
	CU_ASSERT_FALSE(ice_host_addr_usable(&v6.sa, up, AF_INET6, true));
}

static void test_role_switch_and_prflx(void)
{
	struct ice_checklist cl;

	fill(&cl, true);
	ice_checklist_form(&cl);
	uint64_t before = cl.pairs[3].priority; /* relay local, host remote */
	/* s7.2.5.1: after a 487 the roles swap and every priority follows */
	ice_checklist_set_role(&cl, false);
	CU_ASSERT_FALSE(cl.controlling);
	CU_ASSERT_EQUAL(cl.pairs[3].priority,
			ice_pair_priority(cl.remote[cl.pairs[3].remote].priority,
					  cl.local[cl.pairs[3].local].priority));
	CU_ASSERT_NOT_EQUAL(cl.pairs[3].priority, before);
	ice_checklist_set_role(&cl, true);
	CU_ASSERT_EQUAL(cl.pairs[3].priority, before);

	/* s7.3.1.3: a check from an unknown address: a prflx remote, paired
	 * with the local bases only (host, relay), appended */
	unsigned n = cl.n_pairs;
	struct ice_pair first = cl.pairs[0];
	struct ice_cand pr = cand(ICE_CAND_PRFLX, "5.6.7.8:7200", NULL, NULL, 65535);
	int r = ice_checklist_add_remote(&cl, &pr);
	CU_ASSERT_EQUAL(r, 2);
	CU_ASSERT_EQUAL(cl.n_pairs, n + 2);
	CU_ASSERT_EQUAL(cl.pairs[0].local, first.local); /* indexes did not move */
	CU_ASSERT_EQUAL(cl.pairs[n].state, ICE_PAIR_WAITING);
	CU_ASSERT_EQUAL(cl.local[cl.pairs[n].local].type, ICE_CAND_HOST);
	CU_ASSERT_EQUAL(cl.local[cl.pairs[n + 1].local].type, ICE_CAND_RELAY);
	/* the highest-priority Waiting pair goes first, wherever it sits */
	for (unsigned i = 0; i < n; i++)
		cl.pairs[i].state = ICE_PAIR_FAILED;
	CU_ASSERT_EQUAL(ice_checklist_next(&cl), (int)n);
	ice_checklist_result(&cl, n, true);
	CU_ASSERT_EQUAL(ice_checklist_best_valid(&cl), (int)n);
}

int main(void)
{
	static const struct unit_case cases[] = {
		{ "candidate priority (s5.1.2)", test_priority },
		{ "pair priority (s6.1.2.3)", test_pair_priority },
		{ "foundations (s5.1.1.3)", test_foundation },
		{ "redundant candidates (s5.1.3)", test_redundant },
		{ "forming and pruning the check list (s6.1.2)", test_form },
		{ "pair limit (s6.1.2.5)", test_limit },
		{ "initial states, unfreezing (s6.1.2.6)", test_initial_states },
		{ "pacing order and RTO (s6.1.4.2, s14.3)", test_pacing_order },
		{ "triggered checks (s6.1.4.1)", test_triggered },
		{ "check on an In-Progress pair re-triggers (s7.3.1.4)", test_trigger_in_progress },
		{ "host candidate filter (s5.1.1.1)", test_host_filter },
		{ "role switch, peer-reflexive remote (s7.2.5.1, s7.3.1.3)", test_role_switch_and_prflx },
		{ NULL, NULL },
	};

	return unit_run("client_agent", cases);
}
