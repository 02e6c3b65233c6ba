/* Permissions (RFC 8656 s9) and channel bindings (s12) on a fake clock. */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "turn_perm.h"

static struct turn_addr_key peer(const char *ip, uint16_t port)
{
	stun_sockaddr sa;
	struct turn_addr_key k;

	memset(&sa, 0, sizeof(sa));
	if (strchr(ip, ':')) {
		sa.in6.sin6_family = AF_INET6;
		sa.in6.sin6_port = htons(port);
		inet_pton(AF_INET6, ip, &sa.in6.sin6_addr);
	} else {
		sa.in4.sin_family = AF_INET;
		sa.in4.sin_port = htons(port);
		inet_pton(AF_INET, ip, &sa.in4.sin_addr);
	}
	turn_addr_key_set(&k, &sa);
	return k;
}

static void test_key_roundtrip(void)
{
	struct turn_addr_key a = peer("2001:db8::1", 3478), b;
	stun_sockaddr sa;

	turn_addr_key_to_sa(&a, &sa);
	turn_addr_key_set(&b, &sa);
	CU_ASSERT(turn_addr_key_eq(&a, &b));
	CU_ASSERT_EQUAL(sa.sa.sa_family, AF_INET6);
	CU_ASSERT_EQUAL(ntohs(sa.in6.sin6_port), 3478);
}

static void test_perm_lifetime(void)
{
	struct turn_perm_pool *p = turn_perm_pool_new(8, 8, 4);
	struct turn_perm_set s = { 0 };
	struct turn_addr_key a = peer("192.0.2.1", 1000), a2 = peer("192.0.2.1", 2000);
	struct turn_addr_key b = peer("192.0.2.2", 1000);

	CU_ASSERT_EQUAL(turn_perm_install(p, &s, &a, 100.0), 0);
	/* s9: only the IP address counts, not the port */
	CU_ASSERT(turn_perm_check(&s, &a2, 100.0));
	CU_ASSERT(!turn_perm_check(&s, &b, 100.0));
	CU_ASSERT(turn_perm_check(&s, &a, 399.9));
	CU_ASSERT(!turn_perm_check(&s, &a, 400.0)); /* 300 s */
	/* refresh resets to 300 s, no second entry */
	CU_ASSERT_EQUAL(turn_perm_install(p, &s, &a2, 300.0), 0);
	CU_ASSERT_EQUAL(s.n_perms, 1);
	CU_ASSERT(turn_perm_check(&s, &a, 599.0));
	CU_ASSERT_EQUAL(turn_perm_sweep(p, &s, 500.0), 600.0);
	CU_ASSERT_EQUAL(turn_perm_pool_perms(p), 1);
	CU_ASSERT(isinf(turn_perm_sweep(p, &s, 600.0)));
	CU_ASSERT_EQUAL(turn_perm_pool_perms(p), 0);
	CU_ASSERT_EQUAL(s.n_perms, 0);
	turn_perm_pool_free(p);
}

static void test_perm_limits(void)
{
	struct turn_perm_pool *p = turn_perm_pool_new(3, 1, 2);
	struct turn_perm_set s = { 0 }, s2 = { 0 };
	struct turn_addr_key a = peer("192.0.2.1", 1), b = peer("192.0.2.2", 1);
	struct turn_addr_key c = peer("192.0.2.3", 1);

	CU_ASSERT_EQUAL(turn_perm_install(p, &s, &a, 0), 0);
	CU_ASSERT_EQUAL(turn_perm_install(p, &s, &b, 0), 0);
	CU_ASSERT_EQUAL(turn_perm_install(p, &s, &c, 0), -ENOSPC); /* per allocation */
	CU_ASSERT_EQUAL(turn_perm_install(p, &s, &a, 1), 0);       /* refresh is fine */
	CU_ASSERT_EQUAL(turn_perm_install(p, &s2, &a, 0), 0);
	CU_ASSERT_EQUAL(turn_perm_install(p, &s2, &b, 0), -ENOSPC); /* pool */
	turn_perm_clear(p, &s);
	CU_ASSERT_EQUAL(turn_perm_install(p, &s2, &b, 0), 0);
	CU_ASSERT_EQUAL(turn_perm_pool_perms(p), 2);
	turn_perm_clear(p, &s2);
	CU_ASSERT_EQUAL(turn_perm_pool_perms(p), 0);
	turn_perm_pool_free(p);
}

static void test_chan_bind_rules(void)
{
	struct turn_perm_pool *p = turn_perm_pool_new(8, 8, 8);
	struct turn_perm_set s = { 0 };
	struct turn_addr_key a = peer("192.0.2.1", 1000), a2 = peer("192.0.2.1", 1001);
	struct turn_addr_key b = peer("192.0.2.2", 1000);

	/* s12.2: the number must be in 0x4000-0x4FFF */
	CU_ASSERT_EQUAL(turn_chan_bind(p, &s, 0x3FFF, &a, 0), -EINVAL);
	CU_ASSERT_EQUAL(turn_chan_bind(p, &s, 0x5000, &a, 0), -EINVAL);
	CU_ASSERT_EQUAL(turn_chan_bind(p, &s, 0x4000, &a, 0), 0);
	/* the bind installed the permission */
	CU_ASSERT(turn_perm_check(&s, &a, 0));
	CU_ASSERT_EQUAL(turn_perm_pool_chans(p), 1);
	/* same number to another transport address (even same IP): 400 */
	CU_ASSERT_EQUAL(turn_chan_bind(p, &s, 0x4000, &a2, 1), -EINVAL);
	CU_ASSERT_EQUAL(turn_chan_bind(p, &s, 0x4000, &b, 1), -EINVAL);
	/* same address to another number: 400 */
	CU_ASSERT_EQUAL(turn_chan_bind(p, &s, 0x4001, &a, 1), -EINVAL);
	/* rebinding the same pair refreshes */
	CU_ASSERT_EQUAL(turn_chan_bind(p, &s, 0x4000, &a, 100), 0);
	CU_ASSERT_PTR_NOT_NULL(turn_chan_by_number(&s, 0x4000, 699));
	CU_ASSERT_PTR_NULL(turn_chan_by_number(&s, 0x4000, 700));
	CU_ASSERT_PTR_NOT_NULL(turn_chan_by_peer(&s, &a, 699));
	CU_ASSERT_PTR_NULL(turn_chan_by_peer(&s, &a2, 699));
	CU_ASSERT_EQUAL(turn_chan_bind(p, &s, 0x4001, &b, 100), 0);
	CU_ASSERT_EQUAL(s.n_chans, 2);
	turn_perm_clear(p, &s);
	CU_ASSERT_EQUAL(turn_perm_pool_chans(p), 0);
	turn_perm_pool_free(p);
}

static void test_chan_quarantine(void)
{
	struct turn_perm_pool *p = turn_perm_pool_new(8, 8, 8);
	struct turn_perm_set s = { 0 };
	struct turn_addr_key a = peer("192.0.2.1", 1000), b = peer("192.0.2.2", 1000);
	double next;

	CU_ASSERT_EQUAL(turn_chan_bind(p, &s, 0x4000, &a, 0), 0);
	next = turn_perm_sweep(p, &s, 10);
	CU_ASSERT_EQUAL(next, 300.0); /* the permission first */
	next = turn_perm_sweep(p, &s, 300);
	CU_ASSERT_EQUAL(next, 600.0); /* then the channel expiry */
	CU_ASSERT_EQUAL(turn_perm_sweep(p, &s, 600), 900.0); /* then its quarantine */
	CU_ASSERT_EQUAL(turn_perm_pool_chans(p), 0);
	CU_ASSERT_PTR_NULL(turn_chan_by_number(&s, 0x4000, 600));
	/* s12: for 5 minutes after expiry neither may be rebound elsewhere */
	CU_ASSERT_EQUAL(turn_chan_bind(p, &s, 0x4000, &b, 700), -EINVAL);
	CU_ASSERT_EQUAL(turn_chan_bind(p, &s, 0x4001, &a, 899), -EINVAL);
	/* but the same pair may be bound again at once */
	CU_ASSERT_EQUAL(turn_chan_bind(p, &s, 0x4000, &a, 650), 0);
	CU_ASSERT_EQUAL(turn_perm_pool_chans(p), 1);
	CU_ASSERT_EQUAL(s.n_chans, 1);
	/* after expiry (1250) + 300 both are free for new pairs */
	CU_ASSERT_EQUAL(turn_chan_bind(p, &s, 0x4000, &b, 1549), -EINVAL);
	CU_ASSERT_EQUAL(turn_chan_bind(p, &s, 0x4000, &b, 1550), 0);
	CU_ASSERT_EQUAL(turn_chan_bind(p, &s, 0x4001, &a, 1550), 0);
	CU_ASSERT_EQUAL(s.n_chans, 2);
	CU_ASSERT_EQUAL(turn_perm_pool_chans(p), 2);
	turn_perm_clear(p, &s);
	turn_perm_pool_free(p);
}

static void test_chan_rfc5766_range(void)
{
	struct turn_perm_pool *p = turn_perm_pool_new(8, 8, 8);
	struct turn_perm_set s = { 0 };
	struct turn_addr_key a = peer("192.0.2.1", 1000);

	CU_ASSERT_EQUAL(turn_chan_bind(p, &s, 0x7129, &a, 0), -EINVAL);
	turn_perm_pool_set_chan_max(p, TURN_CHANNEL_MAX_RFC5766);
	CU_ASSERT_EQUAL(turn_chan_bind(p, &s, 0x7129, &a, 0), 0);
	CU_ASSERT_PTR_NOT_NULL(turn_chan_by_number(&s, 0x7129, 1));
	CU_ASSERT_EQUAL(turn_chan_bind(p, &s, 0x8000, &a, 0), -EINVAL);
	turn_perm_clear(p, &s);
	turn_perm_pool_free(p);
}

static void test_chan_capacity(void)
{
	struct turn_perm_pool *p = turn_perm_pool_new(8, 1, 8);
	struct turn_perm_set s = { 0 };
	struct turn_addr_key a = peer("192.0.2.1", 1000), b = peer("192.0.2.2", 1000);

	CU_ASSERT_EQUAL(turn_chan_bind(p, &s, 0x4000, &a, 0), 0);
	CU_ASSERT_EQUAL(turn_chan_bind(p, &s, 0x4001, &b, 0), -ENOSPC); /* 508 */
	CU_ASSERT(!turn_perm_check(&s, &b, 0)); /* a failed bind installs nothing */
	turn_perm_clear(p, &s);
	turn_perm_pool_free(p);
}

int main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("turn_perm", NULL, NULL);
	CU_add_test(s, "address keys", test_key_roundtrip);
	CU_add_test(s, "permission lifetime 300 s, IP only", test_perm_lifetime);
	CU_add_test(s, "permission limits", test_perm_limits);
	CU_add_test(s, "channel bind rules (s12.2)", test_chan_bind_rules);
	CU_add_test(s, "channel quarantine 5 min (s12)", test_chan_quarantine);
	CU_add_test(s, "channel capacity", test_chan_capacity);
	CU_add_test(s, "RFC 5766 channel range when asked", test_chan_rfc5766_range);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
