/* CUnit: server/rendezvous (the ID registry and the pending-offer index)
 * on a fake clock: the time is a number these tests choose. */
#include "rendezvous.h"
#include "unit_util.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static const uint8_t key1[16] = { 1 }, key2[16] = { 2 };

static struct rdv_flow flow(const char *addr, void *conn)
{
	struct rdv_flow f = { .tp = 0, .worker = 0, .laddr = 0, .conn = conn };

	CU_ASSERT_EQUAL(stun_sockaddr_parse(&f.peer, addr, 0), 0);
	return f;
}

static void test_register_get(void)
{
	struct rdv_registry *r = rdv_registry_new(0, 0);
	struct rdv_flow f = flow("198.51.100.1:4000", NULL);
	struct rdv_reg g;

	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(rdv_registry_get(r, "a1", 0, &g), -RDV_ERR_UNKNOWN_PEER);
	CU_ASSERT_EQUAL(rdv_registry_put(r, "a1", "user1", &f, key1, 16, 120, true, 1000, &g), 0);
	CU_ASSERT_STRING_EQUAL(g.id, "a1");
	CU_ASSERT_STRING_EQUAL(g.user, "user1");
	CU_ASSERT_EQUAL(g.expiry, 1120);
	memset(&g, 0, sizeof(g));
	CU_ASSERT_EQUAL(rdv_registry_get(r, "a1", 1119.9, &g), 0);
	CU_ASSERT(stun_sockaddr_equal(&g.flow.peer, &f.peer));
	CU_ASSERT_EQUAL(g.keylen, 16);
	CU_ASSERT(!memcmp(g.key, key1, 16));
	CU_ASSERT_EQUAL(rdv_registry_count(r), 1);
	rdv_registry_free(r);
}

/* Registrations expire unless refreshed. */
static void test_expiry_and_refresh(void)
{
	struct rdv_registry *r = rdv_registry_new(0, 0);
	struct rdv_flow f = flow("198.51.100.1:4000", NULL);
	struct rdv_reg g;

	CU_ASSERT_EQUAL(rdv_registry_put(r, "a1", "u", &f, key1, 16, 60, true, 0, NULL), 0);
	/* refreshed at 50 for 60 more: alive at 100, dead at 110 */
	CU_ASSERT_EQUAL(rdv_registry_put(r, "a1", "u", &f, key1, 16, 60, false, 50, &g), 0);
	CU_ASSERT_EQUAL(g.expiry, 110);
	CU_ASSERT_EQUAL(rdv_registry_get(r, "a1", 100, NULL), 0);
	CU_ASSERT_EQUAL(rdv_registry_get(r, "a1", 110, NULL), -RDV_ERR_UNKNOWN_PEER);
	/* a refresh after expiry is too late: register again */
	CU_ASSERT_EQUAL(rdv_registry_put(r, "a1", "u", &f, key1, 16, 60, false, 111, NULL),
			-RDV_ERR_UNKNOWN_PEER);
	CU_ASSERT_EQUAL(rdv_registry_count(r), 0); /* reclaimed on touch */
	CU_ASSERT_EQUAL(rdv_registry_put(r, "a1", "u", &f, key1, 16, 60, true, 111, NULL), 0);
	/* refresh with lifetime 0 deletes */
	CU_ASSERT_EQUAL(rdv_registry_put(r, "a1", "u", &f, key1, 16, 0, false, 112, NULL), 0);
	CU_ASSERT_EQUAL(rdv_registry_get(r, "a1", 112, NULL), -RDV_ERR_UNKNOWN_PEER);
	/* the sweep */
	CU_ASSERT_EQUAL(rdv_registry_put(r, "b1", "u", &f, key1, 16, 10, true, 200, NULL), 0);
	CU_ASSERT_EQUAL(rdv_registry_put(r, "b2", "u", &f, key1, 16, 30, true, 200, NULL), 0);
	CU_ASSERT_EQUAL(rdv_registry_expire(r, 205), 0);
	CU_ASSERT_EQUAL(rdv_registry_expire(r, 215), 1);
	CU_ASSERT_EQUAL(rdv_registry_count(r), 1);
	CU_ASSERT_EQUAL(rdv_registry_expire(r, 230), 1);
	CU_ASSERT_EQUAL(rdv_registry_count(r), 0);
	rdv_registry_free(r);
}

/* An ID held by one user cannot be taken by another, until it expires. */
static void test_taken(void)
{
	struct rdv_registry *r = rdv_registry_new(0, 0);
	struct rdv_flow f1 = flow("198.51.100.1:4000", NULL), f2 = flow("198.51.100.2:5000", NULL);
	struct rdv_reg g;

	CU_ASSERT_EQUAL(rdv_registry_put(r, "a1", "user1", &f1, key1, 16, 60, true, 0, NULL), 0);
	CU_ASSERT_EQUAL(rdv_registry_put(r, "a1", "user2", &f2, key2, 16, 60, true, 1, NULL),
			-RDV_ERR_ID_TAKEN);
	CU_ASSERT_EQUAL(rdv_registry_put(r, "a1", "user2", &f2, key2, 16, 60, false, 1, NULL),
			-RDV_ERR_ID_TAKEN);
	CU_ASSERT_EQUAL(rdv_registry_put(r, "a1", "user2", &f2, key2, 16, 0, false, 1, NULL),
			-RDV_ERR_ID_TAKEN); /* nor deleted */
	CU_ASSERT_EQUAL(rdv_registry_get(r, "a1", 2, &g), 0);
	CU_ASSERT_STRING_EQUAL(g.user, "user1");
	CU_ASSERT(stun_sockaddr_equal(&g.flow.peer, &f1.peer));
	/* expired: free for anyone */
	CU_ASSERT_EQUAL(rdv_registry_put(r, "a1", "user2", &f2, key2, 16, 60, true, 61, &g), 0);
	CU_ASSERT_STRING_EQUAL(g.user, "user2");
	rdv_registry_free(r);
}

/* The same user registering again moves the ID to the new flow; the
 * generation says the flow changed. */
static void test_move(void)
{
	struct rdv_registry *r = rdv_registry_new(0, 0);
	struct rdv_flow f1 = flow("198.51.100.1:4000", NULL), f2 = flow("198.51.100.1:4001", NULL);
	struct rdv_reg g1, g2, g3;

	CU_ASSERT_EQUAL(rdv_registry_put(r, "a1", "u", &f1, key1, 16, 60, true, 0, &g1), 0);
	CU_ASSERT_EQUAL(rdv_registry_put(r, "a1", "u", &f1, key1, 16, 60, false, 1, &g2), 0);
	CU_ASSERT_EQUAL(g1.gen, g2.gen);
	CU_ASSERT_EQUAL(rdv_registry_put(r, "a1", "u", &f2, key2, 16, 60, true, 2, &g3), 0);
	CU_ASSERT_NOT_EQUAL(g3.gen, g2.gen);
	CU_ASSERT(stun_sockaddr_equal(&g3.flow.peer, &f2.peer));
	CU_ASSERT(!memcmp(g3.key, key2, 16));
	CU_ASSERT_EQUAL(rdv_registry_count(r), 1);
	rdv_registry_free(r);
}

static void test_quota_and_full(void)
{
	struct rdv_registry *r = rdv_registry_new(4, 3);
	struct rdv_flow f = flow("198.51.100.1:4000", NULL);
	char id[16];

	for (int i = 0; i < 3; i++) {
		snprintf(id, sizeof(id), "u1-%d", i);
		CU_ASSERT_EQUAL(rdv_registry_put(r, id, "user1", &f, key1, 16, 10 + i, true, 0, NULL), 0);
	}
	CU_ASSERT_EQUAL(rdv_registry_user_count(r, "user1", 0), 3);
	CU_ASSERT_EQUAL(rdv_registry_put(r, "u1-x", "user1", &f, key1, 16, 60, true, 0, NULL),
			-RDV_ERR_QUOTA);
	/* re-registering one it holds is not a new one */
	CU_ASSERT_EQUAL(rdv_registry_put(r, "u1-0", "user1", &f, key1, 16, 10, true, 0, NULL), 0);
	CU_ASSERT_EQUAL(rdv_registry_put(r, "u2-0", "user2", &f, key2, 16, 60, true, 0, NULL), 0);
	CU_ASSERT_EQUAL(rdv_registry_put(r, "u2-1", "user2", &f, key2, 16, 60, true, 0, NULL),
			-RDV_ERR_FULL);
	/* once u1-0 (lifetime 10) has expired there is room again */
	CU_ASSERT_EQUAL(rdv_registry_put(r, "u2-1", "user2", &f, key2, 16, 60, true, 10.5, NULL), 0);
	CU_ASSERT_EQUAL(rdv_registry_user_count(r, "user1", 10.5), 2);
	CU_ASSERT_EQUAL(rdv_registry_put(r, "u1-x", "user1", &f, key1, 16, 60, true, 12, NULL), 0);
	rdv_registry_free(r);
}

static void test_drop_conn_and_bad_input(void)
{
	struct rdv_registry *r = rdv_registry_new(0, 0);
	int c1, c2;
	struct rdv_flow f1 = flow("127.0.0.1:4000", &c1), f2 = flow("127.0.0.1:4001", &c2);
	struct rdv_flow fu = flow("127.0.0.1:4002", NULL);

	CU_ASSERT_EQUAL(rdv_registry_put(r, "a", "u", &f1, key1, 16, 60, true, 0, NULL), 0);
	CU_ASSERT_EQUAL(rdv_registry_put(r, "b", "u", &f1, key1, 16, 60, true, 0, NULL), 0);
	CU_ASSERT_EQUAL(rdv_registry_put(r, "c", "u", &f2, key1, 16, 60, true, 0, NULL), 0);
	CU_ASSERT_EQUAL(rdv_registry_put(r, "d", "u", &fu, key1, 16, 60, true, 0, NULL), 0);
	CU_ASSERT_EQUAL(rdv_registry_drop_conn(r, NULL), 0);
	CU_ASSERT_EQUAL(rdv_registry_drop_conn(r, &c1), 2);
	CU_ASSERT_EQUAL(rdv_registry_get(r, "a", 1, NULL), -RDV_ERR_UNKNOWN_PEER);
	CU_ASSERT_EQUAL(rdv_registry_get(r, "c", 1, NULL), 0);
	CU_ASSERT_EQUAL(rdv_registry_get(r, "d", 1, NULL), 0);
	/* moving between flows keeps the count of stream registrations right */
	CU_ASSERT_EQUAL(rdv_registry_put(r, "m", "u", &f1, key1, 16, 60, true, 0, NULL), 0);
	CU_ASSERT_EQUAL(rdv_registry_put(r, "m", "u", &fu, key1, 16, 60, true, 0, NULL), 0);
	CU_ASSERT_EQUAL(rdv_registry_drop_conn(r, &c1), 0);
	CU_ASSERT_EQUAL(rdv_registry_put(r, "m", "u", &f1, key1, 16, 60, true, 0, NULL), 0);
	CU_ASSERT_EQUAL(rdv_registry_put(r, "m", "u", &f2, key1, 16, 60, false, 0, NULL), 0);
	CU_ASSERT_EQUAL(rdv_registry_drop_conn(r, &c1), 0);
	CU_ASSERT_EQUAL(rdv_registry_drop_conn(r, &c2), 2); /* "c" and "m" */
	CU_ASSERT_EQUAL(rdv_registry_get(r, "m", 1, NULL), -RDV_ERR_UNKNOWN_PEER);
	CU_ASSERT_EQUAL(rdv_registry_put(r, "bad id", "u", &fu, key1, 16, 60, true, 0, NULL),
			-STUN_ERR_BAD_REQUEST);
	CU_ASSERT_EQUAL(rdv_registry_put(r, "", "u", &fu, key1, 16, 60, true, 0, NULL),
			-STUN_ERR_BAD_REQUEST);
	CU_ASSERT_EQUAL(rdv_registry_put(r, "e", "u", &fu, key1, 16, 0, true, 0, NULL),
			-STUN_ERR_BAD_REQUEST);
	rdv_registry_free(r);
}

static void test_offers(void)
{
	struct rdv_registry *r = rdv_registry_new(0, 0);
	uint8_t id1[RDV_OFFER_ID_LEN] = { 1 }, id2[RDV_OFFER_ID_LEN] = { 2 };
	uint8_t id3[RDV_OFFER_ID_LEN] = { 3 };
	struct rdv_msg ans, got;
	int s1, s2, s3, owner = -1;

	memset(&ans, 0, sizeof(ans));
	ans.has_ufrag = true;
	strcpy(ans.ufrag, "wxyz");
	s1 = rdv_offer_add(r, id1, 1, "user1");
	CU_ASSERT_FATAL(s1 >= 0);
	CU_ASSERT_EQUAL(rdv_offer_add(r, id1, 1, "user1"), -STUN_ERR_BAD_REQUEST);
	CU_ASSERT_EQUAL(rdv_offer_poll(r, s1, false, &got), RDV_OFFER_WAITING);
	CU_ASSERT_EQUAL(rdv_offer_answer(r, id2, "user1", &ans, &owner), -RDV_ERR_UNKNOWN_PEER);
	CU_ASSERT_EQUAL(rdv_offer_answer(r, id1, "user2", &ans, &owner), -STUN_ERR_FORBIDDEN);
	CU_ASSERT_EQUAL(rdv_offer_answer(r, id1, "user1", &ans, &owner), 0);
	CU_ASSERT_EQUAL(owner, 1);
	CU_ASSERT_EQUAL(rdv_offer_answer(r, id1, "user1", &ans, &owner), 1); /* repeated */
	CU_ASSERT_EQUAL(rdv_offer_poll(r, s1, true, &got), RDV_OFFER_ANSWERED);
	CU_ASSERT_STRING_EQUAL(got.ufrag, "wxyz");

	s2 = rdv_offer_add(r, id2, 0, "user1");
	CU_ASSERT_EQUAL(rdv_offer_answer(r, id2, "user1", NULL, &owner), 0);
	CU_ASSERT_EQUAL(owner, 0);
	CU_ASSERT_EQUAL(rdv_offer_poll(r, s2, false, NULL), RDV_OFFER_DECLINED);

	/* the owner gives up first: a late Answer is 404 */
	s3 = rdv_offer_add(r, id3, 0, "user1");
	CU_ASSERT_EQUAL(rdv_offer_poll(r, s3, true, NULL), RDV_OFFER_TIMEOUT);
	CU_ASSERT_EQUAL(rdv_offer_answer(r, id3, "user1", &ans, &owner), -RDV_ERR_UNKNOWN_PEER);
	CU_ASSERT_EQUAL(rdv_offer_count(r), 3);
	rdv_offer_remove(r, s1);
	rdv_offer_remove(r, s2);
	rdv_offer_remove(r, s3);
	rdv_offer_remove(r, s3);
	CU_ASSERT_EQUAL(rdv_offer_count(r), 0);
	CU_ASSERT_EQUAL(rdv_offer_answer(r, id1, "user1", &ans, &owner), -RDV_ERR_UNKNOWN_PEER);

	/* bounded */
	for (int i = 0; i < RDV_OFFERS_MAX; i++) {
		uint8_t id[RDV_OFFER_ID_LEN] = { 0 };

		memcpy(id, &i, sizeof(i));
		CU_ASSERT(rdv_offer_add(r, id, 0, "u") >= 0);
	}
	id1[11] = 0xFF;
	CU_ASSERT_EQUAL(rdv_offer_add(r, id1, 0, "u"), -RDV_ERR_FULL);
	rdv_registry_free(r);
}

/* Workers share the registry: hammer it from threads (ASan/TSan food). */
struct hammer {
	struct rdv_registry *r;
	int n;
	int ok;
};

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;
	struct rdv_flow f = { .worker = h->n, .conn = h };
	char id[32], user[16];

	snprintf(user, sizeof(user), "user%d", h->n);
	for (int i = 0; i < 2000; i++) {
		snprintf(id, sizeof(id), "t%d-%d", h->n, i % 8);
		if (rdv_registry_put(h->r, id, user, &f, key1, 16, 60, true, i, NULL) == 0)
			h->ok++;
		rdv_registry_get(h->r, "t0-0", i, NULL);
		if (i % 100 == 99)
			rdv_registry_drop_conn(h->r, h);
	}
	return NULL;
}

static void test_threads(void)
{
	struct rdv_registry *r = rdv_registry_new(64, 8);
	struct hammer h[4];
	pthread_t t[4];

	for (int i = 0; i < 4; i++) {
		h[i] = (struct hammer){ r, i, 0 };
		CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, hammer_main, &h[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CU_ASSERT_EQUAL(h[i].ok, 2000);
	}
	CU_ASSERT(rdv_registry_count(r) <= 32);
	for (int i = 0; i < 4; i++)
		rdv_registry_drop_conn(r, &h[i]);
	CU_ASSERT_EQUAL(rdv_registry_count(r), 0);
	rdv_registry_free(r);
}

int main(void)
{
	static const struct unit_case cases[] = {
		{ "register and look up", test_register_get },
		{ "expiry and refresh on a fake clock", test_expiry_and_refresh },
		{ "an ID held by another user", test_taken },
		{ "re-register moves the flow", test_move },
		{ "per-user quota and capacity", test_quota_and_full },
		{ "drop a connection's IDs; bad input", test_drop_conn_and_bad_input },
		{ "pending offers", test_offers },
		{ "threads share the registry", test_threads },
		{ NULL, NULL },
	};

	return unit_run("rendezvous", cases);
}
