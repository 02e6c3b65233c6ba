/* Allocation table (RFC 8656 s6-s8), quotas and the transaction cache, on a
 * fake clock. */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "turn_alloc.h"
#include "txcache.h"

static stun_sockaddr sa4(const char *ip, uint16_t port)
{
	stun_sockaddr sa;

	memset(&sa, 0, sizeof(sa));
	sa.in4.sin_family = AF_INET;
	sa.in4.sin_port = htons(port);
	inet_pton(AF_INET, ip, &sa.in4.sin_addr);
	return sa;
}

static struct turn_5tuple ft_of(uint16_t client_port)
{
	stun_sockaddr c = sa4("198.51.100.7", client_port), s = sa4("192.0.2.1", 3478);
	struct turn_5tuple ft;

	turn_5tuple_set(&ft, IPPROTO_UDP, &c, &s);
	return ft;
}

static int released;

/* The hook may change the object (it closes sockets): the table must not
 * depend on it afterwards. */
static void on_release(struct turn_alloc *a, void *arg)
{
	(void)arg;
	a->n_relayed = 0;
	released++;
}

static struct turn_table *table(uint32_t cap, struct turn_quota *q)
{
	struct turn_table_cfg cfg = {
		.capacity = cap, .default_lifetime = 600, .max_lifetime = 3600,
		.perms = cap * 4, .chans = cap * 4, .max_per_alloc = 8,
		.ext_size = 24, .release = on_release,
	};

	return turn_table_new(&cfg, q);
}

static struct turn_alloc *make(struct turn_table *t, uint16_t cport, uint16_t rport,
			       uint32_t lifetime, double now)
{
	struct turn_5tuple ft = ft_of(cport);
	stun_sockaddr r = sa4("192.0.2.1", rport);
	struct turn_alloc *a = NULL;

	if (turn_alloc_new(t, &ft, "alice", 5, &a))
		return NULL;
	turn_addr_key_set(&a->relayed[0], &r);
	a->n_relayed = 1;
	if (turn_alloc_activate(t, a, lifetime, now)) {
		turn_alloc_free(t, a);
		return NULL;
	}
	return a;
}

static void test_lifetime_rules(void)
{
	struct turn_table *t = table(4, NULL);

	/* s7.2 / s8.2 */
	CU_ASSERT_EQUAL(turn_table_lifetime(t, false, 0), 600);
	CU_ASSERT_EQUAL(turn_table_lifetime(t, true, 0), 0);
	CU_ASSERT_EQUAL(turn_table_lifetime(t, true, 30), 600);
	CU_ASSERT_EQUAL(turn_table_lifetime(t, true, 1200), 1200);
	CU_ASSERT_EQUAL(turn_table_lifetime(t, true, 99999), 3600);
	turn_table_free(t);
}

static void test_find_and_mismatch(void)
{
	struct turn_table *t = table(4, NULL);
	struct turn_5tuple ft = ft_of(5000), other = ft_of(5001);
	struct turn_alloc *a = make(t, 5000, 50000, 600, 0), *b = NULL;
	stun_sockaddr r = sa4("192.0.2.1", 50000);
	struct turn_addr_key rk;

	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_EQUAL(turn_alloc_find(t, &ft), a);
	CU_ASSERT_PTR_NULL(turn_alloc_find(t, &other));
	turn_addr_key_set(&rk, &r);
	CU_ASSERT_PTR_EQUAL(turn_alloc_find_relayed(t, &rk), a);
	/* s7.2 item 2: the 5-tuple is in use -> 437 */
	CU_ASSERT_EQUAL(turn_alloc_new(t, &ft, "alice", 5, &b), -EEXIST);
	/* s6: relayed addresses are unique */
	CU_ASSERT_PTR_NULL(make(t, 5001, 50000, 600, 0));
	CU_ASSERT_EQUAL(turn_table_count(t), 1);
	/* the extension area round-trips */
	CU_ASSERT_PTR_EQUAL(turn_alloc_from_ext(turn_alloc_ext(a)), a);
	released = 0;
	turn_alloc_free(t, a);
	CU_ASSERT_EQUAL(released, 1);
	CU_ASSERT_PTR_NULL(turn_alloc_find(t, &ft));
	CU_ASSERT_PTR_NULL(turn_alloc_find_relayed(t, &rk));
	turn_table_free(t);
}

static void test_dual_stack_relayed(void)
{
	struct turn_table *t = table(4, NULL);
	struct turn_5tuple ft = ft_of(5000);
	struct turn_alloc *a = NULL;
	stun_sockaddr r4 = sa4("192.0.2.1", 50000), r6;
	struct turn_addr_key k4, k6;

	memset(&r6, 0, sizeof(r6));
	r6.in6.sin6_family = AF_INET6;
	r6.in6.sin6_port = htons(50002);
	inet_pton(AF_INET6, "2001:db8::1", &r6.in6.sin6_addr);
	CU_ASSERT_EQUAL_FATAL(turn_alloc_new(t, &ft, "", 0, &a), 0);
	turn_addr_key_set(&a->relayed[0], &r4);
	turn_addr_key_set(&a->relayed[1], &r6);
	a->n_relayed = 2;
	CU_ASSERT_EQUAL(turn_alloc_activate(t, a, 600, 0), 0);
	turn_addr_key_set(&k4, &r4);
	turn_addr_key_set(&k6, &r6);
	CU_ASSERT_PTR_EQUAL(turn_alloc_find_relayed(t, &k4), a);
	CU_ASSERT_PTR_EQUAL(turn_alloc_find_relayed(t, &k6), a);
	turn_alloc_free(t, a);
	CU_ASSERT_PTR_NULL(turn_alloc_find_relayed(t, &k6));
	turn_table_free(t);
}

static void test_expiry_and_refresh(void)
{
	struct turn_table *t = table(8, NULL);
	struct turn_alloc *a = make(t, 5000, 50000, 600, 0);
	struct turn_alloc *b = make(t, 5001, 50001, 1200, 0);
	struct turn_5tuple fa = ft_of(5000), fb = ft_of(5001);
	stun_sockaddr p = sa4("203.0.113.9", 9);
	struct turn_addr_key pk;

	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_EQUAL(turn_table_next_event(t), 600.0);
	CU_ASSERT_EQUAL(turn_alloc_remaining(a, 0.5), 600);
	/* a permission brings the next event forward to its expiry */
	turn_addr_key_set(&pk, &p);
	CU_ASSERT_EQUAL(turn_perm_install(turn_table_perms(t), &a->ps, &pk, 10), 0);
	turn_alloc_schedule(t, a, 10 + TURN_PERMISSION_LIFETIME);
	CU_ASSERT_EQUAL(turn_table_next_event(t), 310.0);
	CU_ASSERT_EQUAL(turn_perm_pool_perms(turn_table_perms(t)), 1);
	CU_ASSERT_EQUAL(turn_table_expire(t, 310), 0);
	CU_ASSERT_EQUAL(turn_perm_pool_perms(turn_table_perms(t)), 0);
	CU_ASSERT_EQUAL(turn_table_next_event(t), 600.0);
	/* s8.2: a refresh moves the time-to-expiry */
	turn_alloc_refresh(t, a, 600, 500);
	CU_ASSERT_EQUAL(turn_table_expire(t, 600), 0);
	CU_ASSERT_PTR_NOT_NULL(turn_alloc_find(t, &fa));
	CU_ASSERT_EQUAL(turn_table_next_event(t), 1100.0);
	released = 0;
	CU_ASSERT_EQUAL(turn_table_expire(t, 1100), 1);
	CU_ASSERT_EQUAL(released, 1);
	CU_ASSERT_PTR_NULL(turn_alloc_find(t, &fa));
	CU_ASSERT_PTR_NOT_NULL(turn_alloc_find(t, &fb));
	CU_ASSERT_EQUAL(turn_table_expire(t, 1200), 1);
	CU_ASSERT(isinf(turn_table_next_event(t)));
	CU_ASSERT_EQUAL(turn_table_count(t), 0);
	turn_table_free(t);
}

static void test_heap_many(void)
{
	struct turn_table *t = table(256, NULL);
	int expired = 0;

	for (int i = 0; i < 256; i++)
		CU_ASSERT_PTR_NOT_NULL(make(t, (uint16_t)(1000 + i), (uint16_t)(40000 + i),
					    600 + (uint32_t)((i * 37) % 256), 0));
	CU_ASSERT_EQUAL(turn_table_count(t), 256);
	/* capacity -> the caller answers 508 */
	{
		struct turn_5tuple ft = ft_of(9999);
		struct turn_alloc *x = NULL;

		CU_ASSERT_EQUAL(turn_alloc_new(t, &ft, "", 0, &x), -ENOSPC);
	}
	for (double now = 600; now < 900; now += 1) {
		int n = turn_table_expire(t, now);

		CU_ASSERT(n >= 0);
		expired += n;
		CU_ASSERT(turn_table_next_event(t) > now);
	}
	CU_ASSERT_EQUAL(expired, 256);
	turn_table_free(t);
}

static void test_quotas(void)
{
	struct turn_quota *q = turn_quota_new(3, 2, 8);
	struct turn_table *t = table(8, q);
	struct turn_alloc *a[4] = { 0 };
	struct turn_5tuple ft[4];

	for (int i = 0; i < 4; i++)
		ft[i] = ft_of((uint16_t)(6000 + i));
	CU_ASSERT_EQUAL(turn_alloc_new(t, &ft[0], "alice", 5, &a[0]), 0);
	CU_ASSERT_EQUAL(turn_alloc_new(t, &ft[1], "alice", 5, &a[1]), 0);
	/* per-user quota -> 486 */
	CU_ASSERT_EQUAL(turn_alloc_new(t, &ft[2], "alice", 5, &a[2]), -EDQUOT);
	CU_ASSERT_EQUAL(turn_alloc_new(t, &ft[2], "bob", 3, &a[2]), 0);
	/* total quota -> 486 */
	CU_ASSERT_EQUAL(turn_alloc_new(t, &ft[3], "carol", 5, &a[3]), -EDQUOT);
	CU_ASSERT_EQUAL(turn_quota_total(q), 3);
	{
		size_t len;
		const char *n = turn_user_name(a[2]->user, &len);

		CU_ASSERT(len == 3 && !memcmp(n, "bob", 3));
	}
	turn_alloc_free(t, a[0]);
	CU_ASSERT_EQUAL(turn_alloc_new(t, &ft[3], "alice", 5, &a[3]), 0);
	turn_alloc_free(t, a[1]);
	turn_alloc_free(t, a[2]);
	turn_alloc_free(t, a[3]);
	CU_ASSERT_EQUAL(turn_quota_total(q), 0);
	turn_table_free(t);
	turn_quota_free(q);
}

static void test_txcache(void)
{
	struct txcache *c = txcache_new(64);
	struct turn_5tuple a = ft_of(7000), b = ft_of(7001);
	uint8_t tid[STUN_TID_LEN] = { 1, 2, 3 }, tid2[STUN_TID_LEN] = { 9 };
	const uint8_t resp[] = "response bytes";
	const uint8_t *got;
	size_t len = 0;

	CU_ASSERT_PTR_NULL(txcache_get(c, &a, tid, 0, &len));
	txcache_put(c, &a, tid, resp, sizeof(resp), 10);
	got = txcache_get(c, &a, tid, 20, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(got);
	CU_ASSERT_EQUAL(len, sizeof(resp));
	CU_ASSERT(!memcmp(got, resp, len));
	/* another 5-tuple or transaction does not match */
	CU_ASSERT_PTR_NULL(txcache_get(c, &b, tid, 20, &len));
	CU_ASSERT_PTR_NULL(txcache_get(c, &a, tid2, 20, &len));
	/* RFC 8489 s6.3.1: 40 seconds */
	CU_ASSERT_PTR_NOT_NULL(txcache_get(c, &a, tid, 50, &len));
	CU_ASSERT_PTR_NULL(txcache_get(c, &a, tid, 50.5, &len));
	txcache_free(c);
}

int main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("turn_alloc", NULL, NULL);
	CU_add_test(s, "lifetime rules (s7.2, s8.2)", test_lifetime_rules);
	CU_add_test(s, "find by 5-tuple and relayed address", test_find_and_mismatch);
	CU_add_test(s, "dual-stack relayed addresses", test_dual_stack_relayed);
	CU_add_test(s, "expiry and refresh on a fake clock", test_expiry_and_refresh);
	CU_add_test(s, "heap with many allocations, capacity", test_heap_many);
	CU_add_test(s, "per-user and total quotas", test_quotas);
	CU_add_test(s, "transaction cache", test_txcache);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
