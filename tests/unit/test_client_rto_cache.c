/* Unit tests for client/rto_cache.c: the RTO cached per server (RFC 8489
 * s6.2.1: by IP address, stale after 10 minutes, RFC 6298 estimate with
 * Karn's algorithm, 1 ms accuracy). No network, no clock. */
#include <CUnit/Basic.h>

#include "rto_cache.h"
#include "unit_util.h"

static stun_sockaddr A(const char *s)
{
	stun_sockaddr a;

	CU_ASSERT_EQUAL_FATAL(stun_sockaddr_parse(&a, s, 0), 0);
	return a;
}

static void test_default_until_a_transaction(void)
{
	struct rto_cache c;
	stun_sockaddr s = A("192.0.2.1:3478");

	rto_cache_init(&c, 500);
	CU_ASSERT_EQUAL(rto_cache_get(&c, &s, 0, 500), 500);
}

static void test_sample_and_per_ip(void)
{
	struct rto_cache c;
	stun_sockaddr s = A("192.0.2.1:3478"), s_other_port = A("192.0.2.1:5349");
	stun_sockaddr t = A("198.51.100.7:3478"), v6 = A("[2001:db8::1]:3478");

	rto_cache_init(&c, 500);
	/* RFC 6298 (2.2): SRTT = R, RTTVAR = R/2, RTO = SRTT + 4 RTTVAR:
	 * 300 + 600 = 900 ms, not rounded to a second */
	rto_cache_done(&c, &s, 10, 1, 300, 500);
	CU_ASSERT_EQUAL(rto_cache_get(&c, &s, 11, 500), 900);
	/* same server: equality of IP address, the port does not count */
	CU_ASSERT_EQUAL(rto_cache_get(&c, &s_other_port, 11, 500), 900);
	/* another server keeps the default */
	CU_ASSERT_EQUAL(rto_cache_get(&c, &t, 11, 500), 500);
	CU_ASSERT_EQUAL(rto_cache_get(&c, &v6, 11, 500), 500);
	/* (2.3): RTTVAR = 3/4 150 + 1/4 |300 - 300| = 112.5, SRTT = 300:
	 * 300 + 450 = 750 */
	rto_cache_done(&c, &s, 12, 1, 300, 900);
	CU_ASSERT_EQUAL(rto_cache_get(&c, &s, 12, 500), 750);
	/* fast answers: never below the floor (the initial RTO) */
	for (int i = 0; i < 20; i++)
		rto_cache_done(&c, &s, 13, 1, 2, 500);
	CU_ASSERT_EQUAL(rto_cache_get(&c, &s, 13, 500), 500);
	rto_cache_done(&c, &v6, 13, 1, 1000, 500);
	CU_ASSERT_EQUAL(rto_cache_get(&c, &v6, 13, 500), 3000);
}

static void test_karn_and_backoff(void)
{
	struct rto_cache c;
	stun_sockaddr s = A("192.0.2.1:3478");

	rto_cache_init(&c, 500);
	/* answered after the third request (sent with RTO 2000): no sample
	 * (ambiguous), the backed-off RTO is kept */
	rto_cache_done(&c, &s, 5, 3, 2100, 2000);
	CU_ASSERT_EQUAL(rto_cache_get(&c, &s, 6, 500), 2000);
	/* a clean sample then replaces it */
	rto_cache_done(&c, &s, 7, 1, 100, 2000);
	CU_ASSERT_EQUAL(rto_cache_get(&c, &s, 7, 500), 500);
}

static void test_stale_after_ten_minutes(void)
{
	struct rto_cache c;
	stun_sockaddr s = A("192.0.2.1:3478");

	rto_cache_init(&c, 500);
	rto_cache_done(&c, &s, 100, 1, 400, 500);
	CU_ASSERT_EQUAL(rto_cache_get(&c, &s, 100 + 599, 500), 1200);
	CU_ASSERT_EQUAL(rto_cache_get(&c, &s, 100 + 601, 500), 500);
	/* a stale entry starts over with a first sample */
	rto_cache_done(&c, &s, 800, 1, 200, 500);
	CU_ASSERT_EQUAL(rto_cache_get(&c, &s, 800, 500), 600);
}

static void test_many_servers(void)
{
	struct rto_cache c;
	char buf[32];

	rto_cache_init(&c, 500);
	for (int i = 0; i < RTO_CACHE_SLOTS + 3; i++) {
		snprintf(buf, sizeof(buf), "10.0.0.%d:3478", i + 1);
		stun_sockaddr s = A(buf);
		rto_cache_done(&c, &s, i, 1, 400, 500);
		CU_ASSERT_EQUAL(rto_cache_get(&c, &s, i, 500), 1200);
	}
	/* the oldest made room */
	stun_sockaddr first = A("10.0.0.1:3478");
	CU_ASSERT_EQUAL(rto_cache_get(&c, &first, 20, 500), 500);
}

int main(void)
{
	static const struct unit_case cases[] = {
		{ "the default until a transaction completes", test_default_until_a_transaction },
		{ "RFC 6298 estimate per server IP", test_sample_and_per_ip },
		{ "Karn: no sample after a retransmission", test_karn_and_backoff },
		{ "stale after 10 minutes (s6.2.1)", test_stale_after_ten_minutes },
		{ "more servers than slots", test_many_servers },
		{ NULL, NULL },
	};

	return unit_run("client_rto_cache", cases);
}
