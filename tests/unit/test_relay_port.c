/* Relayed addresses (RFC 8656 s7.2): ranges, EVEN-PORT, RESERVATION-TOKEN. */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "relay_port.h"

static stun_sockaddr ip(const char *s)
{
	stun_sockaddr sa;

	memset(&sa, 0, sizeof(sa));
	if (strchr(s, ':')) {
		sa.in6.sin6_family = AF_INET6;
		inet_pton(AF_INET6, s, &sa.in6.sin6_addr);
	} else {
		sa.in4.sin_family = AF_INET;
		inet_pton(AF_INET, s, &sa.in4.sin_addr);
	}
	return sa;
}

static uint16_t port_of(const stun_sockaddr *a)
{
	return ntohs(a->sa.sa_family == AF_INET ? a->in4.sin_port : a->in6.sin6_port);
}

static void test_range_and_exhaustion(void)
{
	stun_sockaddr ips[1] = { ip("192.0.2.1") }, a;
	struct relay_ports *rp = relay_ports_new(ips, 1, 50000, 50009, 4, 42);
	uint8_t seen[10] = { 0 };
	uint64_t tok;

	for (int i = 0; i < 10; i++) {
		CU_ASSERT_EQUAL_FATAL(relay_ports_get(rp, AF_INET, 0, 0, &a, &tok), 0);
		CU_ASSERT(port_of(&a) >= 50000 && port_of(&a) <= 50009);
		CU_ASSERT_EQUAL(a.in4.sin_addr.s_addr, ips[0].in4.sin_addr.s_addr);
		seen[port_of(&a) - 50000]++;
	}
	for (int i = 0; i < 10; i++)
		CU_ASSERT_EQUAL(seen[i], 1); /* each port once */
	CU_ASSERT_EQUAL(relay_ports_get(rp, AF_INET, 0, 0, &a, &tok), -ENOSPC);
	CU_ASSERT_EQUAL(relay_ports_get(rp, AF_INET6, 0, 0, &a, &tok), -EAFNOSUPPORT);
	CU_ASSERT(!relay_ports_has_family(rp, AF_INET6));
	a.in4.sin_port = htons(50004);
	relay_ports_put(rp, &a);
	CU_ASSERT_EQUAL(relay_ports_in_use(rp), 9);
	CU_ASSERT_EQUAL(relay_ports_get(rp, AF_INET, 0, 0, &a, &tok), 0);
	CU_ASSERT_EQUAL(port_of(&a), 50004);
	relay_ports_free(rp);
}

static void test_even_port(void)
{
	stun_sockaddr ips[2] = { ip("192.0.2.1"), ip("2001:db8::1") }, a;
	struct relay_ports *rp = relay_ports_new(ips, 2, 50001, 50100, 4, 7);
	uint64_t tok;

	for (int i = 0; i < 20; i++) {
		CU_ASSERT_EQUAL(relay_ports_get(rp, AF_INET6, RELAY_PORT_EVEN, 0, &a, &tok), 0);
		CU_ASSERT_EQUAL(a.sa.sa_family, AF_INET6);
		CU_ASSERT_EQUAL(port_of(&a) % 2, 0);
	}
	relay_ports_free(rp);
}

static void test_reservation(void)
{
	stun_sockaddr ips[1] = { ip("192.0.2.1") }, a, b;
	struct relay_ports *rp = relay_ports_new(ips, 1, 50000, 50003, 1, 3);
	uint64_t tok = 0, tok2 = 0;

	CU_ASSERT_EQUAL_FATAL(relay_ports_get(rp, AF_INET, RELAY_PORT_RESERVE_NEXT, 100,
					      &a, &tok), 0);
	CU_ASSERT_EQUAL(port_of(&a) % 2, 0);
	CU_ASSERT(tok != 0);
	CU_ASSERT_EQUAL(relay_ports_in_use(rp), 2);
	/* one reservation slot only */
	CU_ASSERT_EQUAL(relay_ports_get(rp, AF_INET, RELAY_PORT_RESERVE_NEXT, 100, &b,
					&tok2), -ENOBUFS);
	/* wrong token: 508 */
	CU_ASSERT_EQUAL(relay_ports_redeem(rp, tok + 1, 101, &b), -ENOENT);
	CU_ASSERT_EQUAL(relay_ports_redeem(rp, tok, 129.9, &b), 0);
	CU_ASSERT_EQUAL(port_of(&b), port_of(&a) + 1);
	/* a token is used once */
	CU_ASSERT_EQUAL(relay_ports_redeem(rp, tok, 129.9, &b), -ENOENT);
	CU_ASSERT_EQUAL(relay_ports_in_use(rp), 2);
	relay_ports_put(rp, &a);
	relay_ports_put(rp, &b);

	/* s7.2: held 30 s, then the port is free again and the token dead */
	CU_ASSERT_EQUAL(relay_ports_get(rp, AF_INET, RELAY_PORT_RESERVE_NEXT, 200, &a, &tok), 0);
	CU_ASSERT_EQUAL(relay_ports_in_use(rp), 2);
	relay_ports_expire(rp, 230);
	CU_ASSERT_EQUAL(relay_ports_in_use(rp), 1);
	CU_ASSERT_EQUAL(relay_ports_redeem(rp, tok, 230, &b), -ENOENT);
	relay_ports_free(rp);
}

static void test_reserve_needs_pair(void)
{
	/* range 50001-50002: the only even port is 50002, whose N+1 is out of
	 * range, so R=1 cannot be met (s7.2 item 8: 508) */
	stun_sockaddr ips[1] = { ip("192.0.2.1") }, a;
	struct relay_ports *rp = relay_ports_new(ips, 1, 50001, 50002, 4, 5);
	uint64_t tok;

	CU_ASSERT_EQUAL(relay_ports_get(rp, AF_INET, RELAY_PORT_RESERVE_NEXT, 0, &a, &tok),
			-ENOSPC);
	CU_ASSERT_EQUAL(relay_ports_get(rp, AF_INET, RELAY_PORT_EVEN, 0, &a, &tok), 0);
	CU_ASSERT_EQUAL(port_of(&a), 50002);
	relay_ports_free(rp);
}

int main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("relay_port", NULL, NULL);
	CU_add_test(s, "range, each port once, exhaustion", test_range_and_exhaustion);
	CU_add_test(s, "EVEN-PORT", test_even_port);
	CU_add_test(s, "RESERVATION-TOKEN held 30 s", test_reservation);
	CU_add_test(s, "R bit needs N+1 in range", test_reserve_needs_pair);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
