/* Unit tests for client/predict.c: the allocation pattern from mapped
 * ports, the plan per pair of patterns, the sequential window and its
 * predicted candidates (priority below srflx, above relay), the birthday
 * port draw (distinct, in range), the probe budget (rate, total, time) and
 * the --predict option. No network. */
#include <CUnit/Basic.h>
#include <errno.h>
#include <string.h>

#include "predict.h"
#include "unit_util.h"

static stun_sockaddr A(const char *s)
{
	stun_sockaddr a;

	CU_ASSERT_EQUAL_FATAL(stun_sockaddr_parse(&a, s, 0), 0);
	return a;
}

static void test_classify(void)
{
	uint16_t eim[] = { 40000, 40000, 40000 }, seq[] = { 20000, 20001, 20002 };
	uint16_t seq2[] = { 30010, 30008 }, rnd[] = { 41234, 1777, 60001 };
	uint16_t far[] = { 20000, 20100 }, uneven[] = { 20000, 20001, 20003 };
	int d = 0;

	CU_ASSERT_EQUAL(predict_classify(eim, 1, &d), PREDICT_ALLOC_UNKNOWN);
	CU_ASSERT_EQUAL(predict_classify(eim, 3, &d), PREDICT_ALLOC_EIM);
	CU_ASSERT_EQUAL(predict_classify(seq, 3, &d), PREDICT_ALLOC_SEQUENTIAL);
	CU_ASSERT_EQUAL(d, 1);
	CU_ASSERT_EQUAL(predict_classify(seq2, 2, &d), PREDICT_ALLOC_SEQUENTIAL);
	CU_ASSERT_EQUAL(d, -2);
	CU_ASSERT_EQUAL(predict_classify(rnd, 3, &d), PREDICT_ALLOC_RANDOM);
	CU_ASSERT_EQUAL(predict_classify(far, 2, &d), PREDICT_ALLOC_RANDOM);
	CU_ASSERT_EQUAL(predict_classify(uneven, 3, &d), PREDICT_ALLOC_RANDOM);
	CU_ASSERT_STRING_EQUAL(predict_alloc_str(PREDICT_ALLOC_SEQUENTIAL), "sequential");
}

static void test_choose(void)
{
	CU_ASSERT_EQUAL(predict_choose(PREDICT_ALLOC_EIM, PREDICT_ALLOC_RANDOM), PREDICT_PLAN_NONE);
	CU_ASSERT_EQUAL(predict_choose(PREDICT_ALLOC_SEQUENTIAL, PREDICT_ALLOC_EIM),
			PREDICT_PLAN_WINDOW);
	CU_ASSERT_EQUAL(predict_choose(PREDICT_ALLOC_RANDOM, PREDICT_ALLOC_EIM),
			PREDICT_PLAN_BIRTHDAY);
	CU_ASSERT_EQUAL(predict_choose(PREDICT_ALLOC_RANDOM, PREDICT_ALLOC_UNKNOWN),
			PREDICT_PLAN_BIRTHDAY);
	/* both hard, one random: nobody can be met by chance: relay */
	CU_ASSERT_EQUAL(predict_choose(PREDICT_ALLOC_RANDOM, PREDICT_ALLOC_RANDOM),
			PREDICT_PLAN_RELAY);
	CU_ASSERT_EQUAL(predict_choose(PREDICT_ALLOC_RANDOM, PREDICT_ALLOC_SEQUENTIAL),
			PREDICT_PLAN_RELAY);
}

static void test_window(void)
{
	uint16_t p[PREDICT_MAX_WINDOW];

	CU_ASSERT_EQUAL(predict_seq_ports(20005, 1, 4, p), 4);
	CU_ASSERT_EQUAL(p[0], 20006);
	CU_ASSERT_EQUAL(p[3], 20009);
	CU_ASSERT_EQUAL(predict_seq_ports(20005, -3, 2, p), 2);
	CU_ASSERT_EQUAL(p[0], 20002);
	CU_ASSERT_EQUAL(p[1], 19999);
	/* wraps within 1024..65535 */
	CU_ASSERT_EQUAL(predict_seq_ports(65534, 1, 3, p), 3);
	CU_ASSERT_EQUAL(p[0], 65535);
	CU_ASSERT_EQUAL(p[1], 1024);
	CU_ASSERT_EQUAL(predict_seq_ports(1025, -2, 1, p), 1);
	CU_ASSERT_EQUAL(p[0], 65535);
	CU_ASSERT_EQUAL(predict_seq_ports(1000, 0, 3, p), 0);
	CU_ASSERT_EQUAL(predict_seq_ports(1000, 1, 99, p), PREDICT_MAX_WINDOW);
}

static void test_cross_window(void)
{
	uint16_t ad[PREDICT_MAX_WINDOW], as[PREDICT_MAX_WINDOW];
	uint16_t bd[PREDICT_MAX_WINDOW], bs[PREDICT_MAX_WINDOW];

	/* A: last 20005, delta 1; B: last 31000, delta 2; no gap */
	CU_ASSERT_EQUAL(predict_cross_window(20005, 1, 0, 31000, 2, 0, 4, ad, as), 4);
	CU_ASSERT_EQUAL(as[0], 20006);
	CU_ASSERT_EQUAL(ad[0], 31002);
	CU_ASSERT_EQUAL(as[3], 20009); /* the window's own sends consume ports */
	CU_ASSERT_EQUAL(ad[3], 31008);
	/* B's view of the same window: its i-th send crosses A's i-th */
	CU_ASSERT_EQUAL(predict_cross_window(31000, 2, 0, 20005, 1, 0, 4, bd, bs), 4);
	for (unsigned i = 0; i < 4; i++) {
		CU_ASSERT_EQUAL(bs[i], ad[i]);
		CU_ASSERT_EQUAL(bd[i], as[i]);
	}
	/* a gap (e.g. a low-TTL punch to one more destination) shifts one side */
	CU_ASSERT_EQUAL(predict_cross_window(20005, 1, 2, 31000, -1, 1, 2, ad, as), 2);
	CU_ASSERT_EQUAL(as[0], 20008);
	CU_ASSERT_EQUAL(as[1], 20009);
	CU_ASSERT_EQUAL(ad[0], 30998);
	CU_ASSERT_EQUAL(ad[1], 30997);
	/* wraps within 1024..65535; a zero delta predicts nothing; capped */
	CU_ASSERT_EQUAL(predict_cross_window(65535, 1, 0, 1025, -1, 0, 2, ad, as), 2);
	CU_ASSERT_EQUAL(as[0], 1024);
	CU_ASSERT_EQUAL(as[1], 1025);
	CU_ASSERT_EQUAL(ad[0], 1024);
	CU_ASSERT_EQUAL(ad[1], 65535);
	CU_ASSERT_EQUAL(predict_cross_window(20005, 0, 0, 31000, 1, 0, 4, ad, as), 0);
	CU_ASSERT_EQUAL(predict_cross_window(20005, 1, 0, 31000, 0, 0, 4, ad, as), 0);
	CU_ASSERT_EQUAL(predict_cross_window(20005, 1, 0, 31000, 1, 0, 99, ad, as),
			PREDICT_MAX_WINDOW);
}

static void test_candidates(void)
{
	stun_sockaddr srflx = A("203.0.113.2:20001"), base = A("10.2.0.10:5000");
	stun_sockaddr server = A("192.0.2.10:3478"), probe = A("203.0.113.2:20003");
	struct ice_cand c[PREDICT_MAX_WINDOW];
	unsigned n = predict_candidates(&srflx, &base, &server, 20001, 1, 3, c);

	CU_ASSERT_EQUAL_FATAL(n, 3);
	CU_ASSERT_EQUAL(c[0].type, ICE_CAND_PREDICTED);
	CU_ASSERT(stun_sockaddr_equal(&c[1].addr, &(stun_sockaddr){ 0 }) == false);
	CU_ASSERT(stun_sockaddr_equal(&c[1].addr, &probe));
	CU_ASSERT(stun_sockaddr_equal(&c[2].base, &base));
	/* RFC 8445 s5.1.2: below srflx, above relay; first guess first */
	CU_ASSERT(c[0].priority < ice_priority(ICE_CAND_SRFLX, 0, 1));
	CU_ASSERT(c[2].priority > ice_priority(ICE_CAND_RELAY, 65535, 1));
	CU_ASSERT(c[0].priority > c[1].priority && c[1].priority > c[2].priority);
	/* a foundation per guess: none waits frozen behind another (s6.1.2.6) */
	CU_ASSERT(strcmp(c[0].foundation, c[2].foundation) != 0);
	CU_ASSERT(c[0].foundation[0] != 0);
	CU_ASSERT(predict_is_predicted(&probe, c, n));
	CU_ASSERT(!predict_is_predicted(&srflx, c, n));
	c[1].type = ICE_CAND_SRFLX;
	CU_ASSERT(!predict_is_predicted(&probe, c, n));
}

/* The peer's window back from its predicted candidates, in any order, as
 * predict_probe_cross() reads it from an offer or answer. */
static void test_peer_window(void)
{
	stun_sockaddr srflx = A("203.0.113.2:30000"), base = A("10.2.0.10:5000");
	stun_sockaddr server = A("192.0.2.10:3478");
	struct ice_cand c[PREDICT_MAX_WINDOW + 1], t;
	uint16_t last = 0;
	int delta = 0;
	unsigned n = predict_candidates(&srflx, &base, &server, 30002, 2, 4, c);

	CU_ASSERT_EQUAL_FATAL(n, 4);
	t = c[0]; /* the order of the list does not matter, the priorities do */
	c[0] = c[3];
	c[3] = t;
	c[n] = c[1]; /* the birthday flag is not part of a window */
	c[n].addr = A("203.0.113.2:1111");
	c[n].priority = 0xffffffffu;
	snprintf(c[n].foundation, sizeof(c[n].foundation), "%s", PREDICT_BIRTHDAY_FOUNDATION);
	CU_ASSERT_EQUAL(predict_peer_window(c, n + 1, &last, &delta), 4);
	CU_ASSERT_EQUAL(last, 30002);
	CU_ASSERT_EQUAL(delta, 2);
	/* across the wrap from 65535 to 1024, and a falling window */
	n = predict_candidates(&srflx, &base, &server, 65534, 1, 3, c);
	CU_ASSERT_EQUAL(predict_peer_window(c, n, &last, &delta), 3);
	CU_ASSERT_EQUAL(last, 65534);
	CU_ASSERT_EQUAL(delta, 1);
	n = predict_candidates(&srflx, &base, &server, 1025, -1, 3, c);
	CU_ASSERT_EQUAL(predict_peer_window(c, n, &last, &delta), 3);
	CU_ASSERT_EQUAL(last, 1025);
	CU_ASSERT_EQUAL(delta, -1);
	/* one guess: delta 1; no guess (or only the flag): no window */
	n = predict_candidates(&srflx, &base, &server, 30002, 2, 1, c);
	CU_ASSERT_EQUAL(predict_peer_window(c, n, &last, &delta), 1);
	CU_ASSERT_EQUAL(last, 30003);
	c[0].type = ICE_CAND_SRFLX;
	CU_ASSERT_EQUAL(predict_peer_window(c, n, &last, &delta), 0);
	/* guesses too far apart to be one window */
	n = predict_candidates(&srflx, &base, &server, 30002, 2, 2, c);
	c[1].addr = A("203.0.113.2:40000");
	CU_ASSERT_EQUAL(predict_peer_window(c, n, &last, &delta), 0);
}

static void test_rand_ports(void)
{
	static uint8_t seen[65536];
	struct predict_rand r;
	unsigned n = 0;
	uint16_t p;

	memset(seen, 0, sizeof(seen));
	predict_rand_init(&r, 12345);
	while ((p = predict_rand_port(&r)) != 0) {
		CU_ASSERT_FATAL(p >= PREDICT_PORT_MIN);
		CU_ASSERT_FATAL(!seen[p]);
		seen[p] = 1;
		n++;
	}
	CU_ASSERT_EQUAL(n, 65536 - PREDICT_PORT_MIN); /* every port, once */
	/* another seed, another order */
	struct predict_rand r2;
	predict_rand_init(&r2, 777);
	predict_rand_init(&r, 12345);
	unsigned same = 0;
	for (int i = 0; i < 16; i++)
		same += predict_rand_port(&r) == predict_rand_port(&r2);
	CU_ASSERT(same < 4);
}

static void test_budget(void)
{
	struct predict_opts o;
	struct predict_budget b;

	predict_opts_default(&o);
	o.pps = 100;
	o.packets = 150;
	o.ms = 3000;
	predict_budget_init(&b, &o, 1000);
	CU_ASSERT_EQUAL(predict_budget_take(&b, 1000), 1);
	CU_ASSERT_EQUAL(predict_budget_take(&b, 1000), 0);
	CU_ASSERT_EQUAL(predict_budget_take(&b, 1100), 10); /* 100/s */
	CU_ASSERT_EQUAL(predict_budget_take(&b, 2000), 90);
	CU_ASSERT_EQUAL(predict_budget_take(&b, 3500), 49); /* total 150 */
	CU_ASSERT(predict_budget_done(&b, 3500));
	predict_budget_init(&b, &o, 0);
	CU_ASSERT_EQUAL(predict_budget_take(&b, 2999), 150);
	predict_budget_init(&b, &o, 0);
	CU_ASSERT_EQUAL(predict_budget_take(&b, 3000), 0); /* time is up */
	CU_ASSERT(predict_budget_done(&b, 3000));
}

static void test_opts(void)
{
	struct predict_opts o;
	char err[160];

	predict_opts_default(&o);
	CU_ASSERT(o.enabled && o.window == 8 && o.ttl == 0 && o.ms == 5000 && o.cross);
	CU_ASSERT_EQUAL(predict_opts_parse(&o, "cross=0", err, sizeof(err)), 0);
	CU_ASSERT(o.enabled && !o.cross && o.window == 8);
	CU_ASSERT_EQUAL(predict_opts_parse(&o, "cross=1", err, sizeof(err)), 0);
	CU_ASSERT(o.cross);
	CU_ASSERT_EQUAL(predict_opts_parse(&o, "cross=2", err, sizeof(err)), -EINVAL);
	CU_ASSERT(strstr(err, "cross") != NULL);
	CU_ASSERT_EQUAL(predict_opts_parse(&o, "window=4,ttl=2,sockets=128,seconds=2", err,
					   sizeof(err)), 0);
	CU_ASSERT(o.enabled && o.window == 4 && o.ttl == 2 && o.sockets == 128 && o.ms == 2000);
	CU_ASSERT_EQUAL(o.pps, 1000);
	CU_ASSERT_EQUAL(predict_opts_parse(&o, "off", err, sizeof(err)), 0);
	CU_ASSERT(!o.enabled);
	CU_ASSERT_EQUAL(predict_opts_parse(&o, "window=0", err, sizeof(err)), -EINVAL);
	CU_ASSERT(strstr(err, "window") != NULL);
	CU_ASSERT_EQUAL(predict_opts_parse(&o, "colour=red", err, sizeof(err)), -EINVAL);
	CU_ASSERT(strstr(err, "unknown") != NULL);
	CU_ASSERT_EQUAL(predict_opts_parse(&o, "pps=12x", err, sizeof(err)), -EINVAL);
	CU_ASSERT(!o.enabled); /* unchanged on error */
}

int main(void)
{
	static const struct unit_case cases[] = {
		{ "allocation pattern from mapped ports", test_classify },
		{ "plan per pair of patterns", test_choose },
		{ "sequential window, wrapping", test_window },
		{ "both sequential: crossing window", test_cross_window },
		{ "predicted candidates (RFC 8445 s5.1.2)", test_candidates },
		{ "the peer's window from its candidates", test_peer_window },
		{ "birthday: distinct random ports", test_rand_ports },
		{ "probe budget: rate, total, time", test_budget },
		{ "--predict option", test_opts },
		{ NULL, NULL },
	};

	return unit_run("client_predict", cases);
}
