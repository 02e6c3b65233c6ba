/* Unit tests of server/auth: RFC 8489 s9.2.4 long-term credentials with
 * USERHASH, PASSWORD-ALGORITHMS and MESSAGE-INTEGRITY-SHA256, stateless
 * nonces, userdb files and TURN REST secrets. Requests are built with
 * proto's builder and signed with proto's MI / MI-SHA256. */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "stun_auth.h"
#include "stun_msg.h"
#include "unit_util.h"

#define REALM "example.org"
#define NOW 1700000000ull
#define B1_USER "\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83\xe3\x82\xaf\xe3\x82\xb9"
/* "The<U+00AD>M<U+00AA>tr<U+2168>": TheMatrIX before OpaqueString */
#define B1_PASS_RAW "The\xc2\xad" "M\xc2\xaa" "tr\xe2\x85\xa8"

enum integ { I_NONE = 0, I_MI = 1, I_MI256 = 2, I_BOTH = 3 };

/* What to put in a request. Unset strings are left out. */
struct req {
	const char *username;
	const uint8_t *userhash;     /* 32 bytes */
	const char *realm;
	const char *nonce;
	uint16_t pa;                 /* PASSWORD-ALGORITHM, 0 = none */
	const uint16_t *pas;         /* PASSWORD-ALGORITHMS */
	size_t n_pas;
	enum integ integ;
	const uint8_t *key, *key256; /* for MI and MI-SHA256 (key256 NULL = key) */
	size_t key_len, key256_len;
};

/* A built and decoded request: m borrows buf. */
struct msg {
	uint8_t buf[1500];
	struct stun_msg m;
};

static const uint16_t algs_sha_first[] = { STUN_PWALG_SHA256, STUN_PWALG_MD5 };
static const uint16_t algs_md5_first[] = { STUN_PWALG_MD5, STUN_PWALG_SHA256 };
static const uint8_t tid[STUN_TID_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };

static void build(struct msg *out, const struct req *r)
{
	struct stun_builder b;
	int len;

	stun_build_init(&b, out->buf, sizeof(out->buf), STUN_METHOD_ALLOCATE,
			STUN_CLASS_REQUEST, tid);
	stun_build_u8(&b, STUN_ATTR_REQUESTED_TRANSPORT, 17);
	if (r->username)
		stun_build_str(&b, STUN_ATTR_USERNAME, r->username);
	if (r->userhash)
		stun_build_bytes(&b, STUN_ATTR_USERHASH, r->userhash, STUN_USERHASH_LEN);
	if (r->realm)
		stun_build_str(&b, STUN_ATTR_REALM, r->realm);
	if (r->nonce)
		stun_build_str(&b, STUN_ATTR_NONCE, r->nonce);
	if (r->pas)
		stun_build_pw_algs(&b, r->pas, r->n_pas);
	if (r->pa)
		stun_build_u32(&b, STUN_ATTR_PASSWORD_ALGORITHM, (uint32_t)r->pa << 16);
	if (r->integ & I_MI)
		stun_build_mi(&b, r->key, r->key_len);
	if (r->integ & I_MI256)
		stun_build_mi256(&b, r->key256 ? r->key256 : r->key,
				 r->key256 ? r->key256_len : r->key_len);
	stun_build_fingerprint(&b);
	len = stun_build_finish(&b);
	CU_ASSERT_FATAL(len > 0);
	CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&out->m, out->buf, (size_t)len), 0);
}

static stun_sockaddr client_addr(const char *ip, uint16_t port)
{
	stun_sockaddr a;

	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, ip, &a.in4.sin_addr) == 1) {
		a.in4.sin_family = AF_INET;
		a.in4.sin_port = htons(port);
		return a;
	}
	CU_ASSERT_FATAL(inet_pton(AF_INET6, ip, &a.in6.sin6_addr) == 1);
	a.in6.sin6_family = AF_INET6;
	a.in6.sin6_port = htons(port);
	return a;
}

static stun_sockaddr cli;

static struct auth_ctx *ctx_new(const struct auth_params *p)
{
	struct auth_ctx *c = NULL;
	char err[512] = "";
	int rc = auth_ctx_new(p, &c, err, sizeof(err));

	if (rc)
		fprintf(stderr, "auth_ctx_new: %d %s\n", rc, err);
	CU_ASSERT_FATAL(rc == 0 && c);
	return c;
}

static struct auth_ctx *ctx_users(const char *const *users, size_t n)
{
	struct auth_params p = { .realm = REALM, .users = users, .n_users = n };

	return ctx_new(&p);
}

/* The challenge: an unauthenticated request and its 401. */
static void challenge(const struct auth_ctx *c, uint64_t now, const stun_sockaddr *from,
		      struct auth_result *res)
{
	struct msg q;
	struct req r = { 0 };

	build(&q, &r);
	CU_ASSERT_EQUAL(auth_check(c, &q.m, now, from, res, NULL), 401);
}

static void nonce_for(const struct auth_ctx *c, uint64_t now, char nonce[STUN_NONCE_MAX])
{
	struct auth_result res;

	challenge(c, now, &cli, &res);
	strcpy(nonce, res.nonce);
}

static void key_of(int alg, const char *user, const char *pw, uint8_t key[STUN_KEY_MAX],
		   size_t *len)
{
	int n = stun_key_long_term(alg, user, REALM, pw, key);

	CU_ASSERT_FATAL(n == 16 || n == 32);
	*len = (size_t)n;
}

static int run(const struct auth_ctx *c, const struct req *r, uint64_t now,
	       struct auth_result *res)
{
	struct msg q;

	build(&q, r);
	return auth_check(c, &q.m, now, &cli, res, NULL);
}

/* A request by user/pw with algorithm alg (0: no PASSWORD-ALGORITHM(S)). */
static int run_user(const struct auth_ctx *c, const char *user, const char *pw, uint16_t alg,
		    enum integ integ, uint64_t now, struct auth_result *res)
{
	struct auth_result ch;
	uint8_t key[STUN_KEY_MAX];
	size_t klen;
	struct req r = { .username = user, .realm = REALM, .nonce = ch.nonce, .integ = integ };

	challenge(c, now, &cli, &ch);
	key_of(alg ? alg : STUN_PWALG_MD5, user, pw, key, &klen);
	r.key = key;
	r.key_len = klen;
	if (alg) {
		/* echo the offer, as s9.2.5 says */
		r.pa = alg;
		r.pas = ch.n_pw_algs ? ch.pw_algs : algs_sha_first;
		r.n_pas = 2;
	}
	return run(c, &r, now, res);
}

/* ---- tests ---- */

static void test_challenge(void)
{
	const char *users[] = { "alice:wonderland" };
	struct auth_ctx *c = ctx_users(users, 1);
	struct auth_result res, res2;
	stun_sockaddr other = client_addr("192.0.2.2", 40000);
	stun_sockaddr other_port = client_addr("192.0.2.1", 40001);
	uint32_t features = 0;
	uint8_t buf[512];
	struct stun_builder b;
	struct stun_msg m;
	int len;

	challenge(c, NOW, &cli, &res);
	CU_ASSERT_EQUAL(res.outcome, AUTH_CHALLENGE);
	CU_ASSERT(res.realm && !strcmp(res.realm, REALM));
	CU_ASSERT_EQUAL(strncmp(res.nonce, "obMatJos2", 9), 0);
	CU_ASSERT_EQUAL(res.n_pw_algs, 2);
	CU_ASSERT_EQUAL(res.pw_algs[0], STUN_PWALG_SHA256);
	CU_ASSERT_EQUAL(res.pw_algs[1], STUN_PWALG_MD5);
	CU_ASSERT_EQUAL(res.key_len, 0);
	/* s9.2.4: password algorithms and username anonymity bits */
	CU_ASSERT_EQUAL(strncmp(res.nonce + 9, "wAAA", 4), 0);
	/* the same source gets the same nonce within a second; another
	 * address or port gets another (s9.2.4 bullet 1) */
	challenge(c, NOW, &cli, &res2);
	CU_ASSERT_STRING_EQUAL(res.nonce, res2.nonce);
	challenge(c, NOW, &other, &res2);
	CU_ASSERT_STRING_NOT_EQUAL(res.nonce, res2.nonce);
	challenge(c, NOW, &other_port, &res2);
	CU_ASSERT_STRING_NOT_EQUAL(res.nonce, res2.nonce);

	/* the error response carries ERROR-CODE, REALM, NONCE, PASSWORD-ALGORITHMS */
	stun_build_init(&b, buf, sizeof(buf), STUN_METHOD_ALLOCATE, STUN_CLASS_ERROR, tid);
	auth_build_error(&res, &b);
	len = stun_build_finish(&b);
	CU_ASSERT_FATAL(len > 0);
	CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m, buf, (size_t)len), 0);
	CU_ASSERT_EQUAL(m.error.code, 401);
	CU_ASSERT(m.realm.len == strlen(REALM) && !memcmp(m.realm.p, REALM, m.realm.len));
	CU_ASSERT(m.nonce.len == strlen(res.nonce) && !memcmp(m.nonce.p, res.nonce, m.nonce.len));
	CU_ASSERT_EQUAL(m.n_pw_algs, 2);
	CU_ASSERT_EQUAL(m.pw_algs[0].alg, STUN_PWALG_SHA256);
	CU_ASSERT(!stun_msg_has(&m, STUN_ATTR_USERNAME));
	CU_ASSERT(!stun_msg_has(&m, STUN_ATTR_MESSAGE_INTEGRITY));
	/* the nonce is valid for this client, not another */
	CU_ASSERT_EQUAL(stun_nonce_check((const uint8_t *)"x", 1, res.nonce, strlen(res.nonce),
					 NOW, NULL, 0, &features), STUN_E_STALE);
	auth_ctx_free(c);
}

static void test_missing_attributes(void)
{
	const char *users[] = { "alice:wonderland" };
	struct auth_ctx *c = ctx_users(users, 1);
	char nonce[STUN_NONCE_MAX];
	uint8_t key[STUN_KEY_MAX];
	size_t klen;
	struct auth_result res;
	struct req full, r;

	nonce_for(c, NOW, nonce);
	key_of(STUN_PWALG_MD5, "alice", "wonderland", key, &klen);
	full = (struct req){ .username = "alice", .realm = REALM, .nonce = nonce,
			     .integ = I_MI, .key = key, .key_len = klen };
	CU_ASSERT_EQUAL(run(c, &full, NOW, &res), 0);

	r = full;
	r.username = NULL;
	CU_ASSERT_EQUAL(run(c, &r, NOW, &res), 400);
	CU_ASSERT_EQUAL(res.outcome, AUTH_MISSING_ATTR);
	/* s9.2.4: SHOULD NOT include NONCE or REALM */
	CU_ASSERT_PTR_NULL(res.realm);
	CU_ASSERT_EQUAL(res.nonce[0], 0);
	CU_ASSERT_EQUAL(res.n_pw_algs, 0);
	r = full;
	r.realm = NULL;
	CU_ASSERT_EQUAL(run(c, &r, NOW, &res), 400);
	r = full;
	r.nonce = NULL;
	CU_ASSERT_EQUAL(run(c, &r, NOW, &res), 400);
	r = full;
	r.integ = I_MI256;
	r.username = NULL;
	CU_ASSERT_EQUAL(run(c, &r, NOW, &res), 400);
	/* no integrity at all: the challenge, whatever else is there */
	r = full;
	r.integ = I_NONE;
	CU_ASSERT_EQUAL(run(c, &r, NOW, &res), 401);
	CU_ASSERT_EQUAL(res.outcome, AUTH_CHALLENGE);
	auth_ctx_free(c);
}

static void test_md5_classic(void)
{
	const char *users[] = { "alice:wonderland", "bob:builder" };
	struct auth_ctx *c = ctx_users(users, 2);
	struct auth_result res = { 0 };
	uint8_t key[STUN_KEY_MAX];
	size_t klen;

	/* an RFC 5389 client: MESSAGE-INTEGRITY, no PASSWORD-ALGORITHM(S) */
	CU_ASSERT_EQUAL(run_user(c, "alice", "wonderland", 0, I_MI, NOW, &res), 0);
	CU_ASSERT_EQUAL(res.outcome, AUTH_OK);
	CU_ASSERT_STRING_EQUAL(res.username, "alice");
	CU_ASSERT_EQUAL(res.username_len, 5);
	CU_ASSERT_EQUAL(res.pw_alg, STUN_PWALG_MD5);
	key_of(STUN_PWALG_MD5, "alice", "wonderland", key, &klen);
	CU_ASSERT(res.key_len == 16 && !memcmp(res.key, key, 16));
	CU_ASSERT(res.sign_mi && !res.sign_mi256);
	CU_ASSERT_PTR_NULL(res.realm);
	CU_ASSERT_EQUAL(run_user(c, "bob", "builder", 0, I_MI, NOW, &res), 0);
	CU_ASSERT_STRING_EQUAL(res.username, "bob");
	auth_result_wipe(&res);
	CU_ASSERT_EQUAL(res.key_len, 0);
	auth_ctx_free(c);
}

static void test_sha256(void)
{
	const char *users[] = { "alice:wonderland" };
	struct auth_ctx *c = ctx_users(users, 1);
	struct auth_result res = { 0 };
	uint8_t key[STUN_KEY_MAX];
	size_t klen;

	CU_ASSERT_EQUAL(run_user(c, "alice", "wonderland", STUN_PWALG_SHA256, I_MI256, NOW, &res), 0);
	CU_ASSERT_EQUAL(res.pw_alg, STUN_PWALG_SHA256);
	key_of(STUN_PWALG_SHA256, "alice", "wonderland", key, &klen);
	CU_ASSERT(res.key_len == 32 && !memcmp(res.key, key, 32));
	CU_ASSERT(res.sign_mi256 && !res.sign_mi);
	/* PASSWORD-ALGORITHM MD5 but signed with MI: response gets both */
	memset(&res, 0, sizeof(res));
	CU_ASSERT_EQUAL(run_user(c, "alice", "wonderland", STUN_PWALG_MD5, I_MI, NOW, &res), 0);
	CU_ASSERT_EQUAL(res.pw_alg, STUN_PWALG_MD5);
	CU_ASSERT_EQUAL(res.key_len, 16);
	CU_ASSERT(res.sign_mi256 && res.sign_mi);
	/* SHA-256 key but signed with MESSAGE-INTEGRITY (HMAC-SHA1) */
	memset(&res, 0, sizeof(res));
	CU_ASSERT_EQUAL(run_user(c, "alice", "wonderland", STUN_PWALG_SHA256, I_MI, NOW, &res), 0);
	CU_ASSERT_EQUAL(res.key_len, 32);
	/* MD5 key with MI-SHA256, no algorithm attributes */
	memset(&res, 0, sizeof(res));
	CU_ASSERT_EQUAL(run_user(c, "alice", "wonderland", 0, I_MI256, NOW, &res), 0);
	CU_ASSERT(res.sign_mi256 && !res.sign_mi);
	/* the wrong key for the algorithm named */
	memset(&res, 0, sizeof(res));
	CU_ASSERT_EQUAL(run_user(c, "alice", "wrong", STUN_PWALG_SHA256, I_MI256, NOW, &res), 401);
	CU_ASSERT_EQUAL(res.outcome, AUTH_BAD_INTEGRITY);
	auth_ctx_free(c);
}

static void test_integrity_preference(void)
{
	const char *users[] = { "alice:wonderland" };
	struct auth_ctx *c = ctx_users(users, 1);
	char nonce[STUN_NONCE_MAX];
	uint8_t good[STUN_KEY_MAX], bad[STUN_KEY_MAX];
	size_t glen, blen;
	struct auth_result res;
	struct req r;

	nonce_for(c, NOW, nonce);
	key_of(STUN_PWALG_MD5, "alice", "wonderland", good, &glen);
	key_of(STUN_PWALG_MD5, "alice", "other", bad, &blen);
	r = (struct req){ .username = "alice", .realm = REALM, .nonce = nonce, .integ = I_BOTH,
			  .key = bad, .key_len = blen, .key256 = good, .key256_len = glen };
	/* s9.2.4: MESSAGE-INTEGRITY-SHA256 is checked when present */
	CU_ASSERT_EQUAL(run(c, &r, NOW, &res), 0);
	CU_ASSERT(res.sign_mi && res.sign_mi256);
	r.key = good;
	r.key256 = bad;
	CU_ASSERT_EQUAL(run(c, &r, NOW, &res), 401);
	CU_ASSERT_EQUAL(res.outcome, AUTH_BAD_INTEGRITY);
	/* s9.2.4: REALM and NONCE in the 401 */
	CU_ASSERT(res.realm && !strcmp(res.realm, REALM));
	CU_ASSERT_EQUAL(strncmp(res.nonce, "obMatJos2", 9), 0);
	CU_ASSERT_EQUAL(res.key_len, 0);
	CU_ASSERT(!res.sign_mi && !res.sign_mi256);
	auth_ctx_free(c);
}

static void test_password_algorithms_checks(void)
{
	const char *users[] = { "alice:wonderland" };
	struct auth_ctx *c = ctx_users(users, 1);
	static const uint16_t one[] = { STUN_PWALG_SHA256 };
	static const uint16_t odd[] = { STUN_PWALG_SHA256, 3 };
	char nonce[STUN_NONCE_MAX];
	uint8_t key[STUN_KEY_MAX];
	size_t klen;
	struct auth_result res;
	struct req ok, r;

	nonce_for(c, NOW, nonce);
	key_of(STUN_PWALG_SHA256, "alice", "wonderland", key, &klen);
	ok = (struct req){ .username = "alice", .realm = REALM, .nonce = nonce,
			   .pa = STUN_PWALG_SHA256, .pas = algs_sha_first, .n_pas = 2,
			   .integ = I_MI256, .key = key, .key_len = klen };
	CU_ASSERT_EQUAL(run(c, &ok, NOW, &res), 0);
	/* s9.2.4 bullet 3: (1) both present */
	r = ok;
	r.pas = NULL;
	CU_ASSERT_EQUAL(run(c, &r, NOW, &res), 400);
	CU_ASSERT_EQUAL(res.outcome, AUTH_BAD_PW_ALG);
	CU_ASSERT_PTR_NULL(res.realm);
	r = ok;
	r.pa = 0;
	CU_ASSERT_EQUAL(run(c, &r, NOW, &res), 400);
	/* (2) the list as we sent it: order and content */
	r = ok;
	r.pas = algs_md5_first;
	CU_ASSERT_EQUAL(run(c, &r, NOW, &res), 400);
	r = ok;
	r.pas = one;
	r.n_pas = 1;
	CU_ASSERT_EQUAL(run(c, &r, NOW, &res), 400);
	r = ok;
	r.pas = odd;
	CU_ASSERT_EQUAL(run(c, &r, NOW, &res), 400);
	/* (3) the algorithm is one of the list */
	r = ok;
	r.pa = 3;
	CU_ASSERT_EQUAL(run(c, &r, NOW, &res), 400);
	auth_ctx_free(c);
}

static void test_rfc8489_b1_user(void)
{
	const char *users[] = { B1_USER ":TheMatrIX" };
	const char *users_raw[] = { B1_USER ":" B1_PASS_RAW };
	struct auth_ctx *c = ctx_users(users, 1), *c2;
	uint8_t vec[256], uh[STUN_USERHASH_LEN], key[STUN_KEY_MAX];
	uint16_t offer[2];
	char nonce[STUN_NONCE_MAX];
	size_t klen;
	struct auth_result res;
	struct req r;

	/* the USERHASH of B.1 is the one we look the user up by */
	CU_ASSERT_FATAL(unit_load_vector("rfc8489_b1.bin", vec, sizeof(vec)) > 56);
	CU_ASSERT_EQUAL(stun_userhash(B1_USER, REALM, uh), 0);
	CU_ASSERT_EQUAL(memcmp(uh, vec + 24, 32), 0);

	challenge(c, NOW, &cli, &res);
	strcpy(nonce, res.nonce);
	key_of(STUN_PWALG_SHA256, B1_USER, "TheMatrIX", key, &klen);
	CU_ASSERT_EQUAL(res.n_pw_algs, 2);
	memcpy(offer, res.pw_algs, sizeof(offer));
	r = (struct req){ .userhash = vec + 24, .realm = REALM, .nonce = nonce,
			  .pa = STUN_PWALG_SHA256, .pas = offer, .n_pas = 2,
			  .integ = I_MI256, .key = key, .key_len = klen };
	CU_ASSERT_EQUAL(run(c, &r, NOW, &res), 0);
	CU_ASSERT_STRING_EQUAL(res.username, B1_USER);
	CU_ASSERT_EQUAL(res.pw_alg, STUN_PWALG_SHA256);
	CU_ASSERT(res.key_len == 32 && !memcmp(res.key, key, 32));
	CU_ASSERT(res.sign_mi256);

	/* the password as typed, before OpaqueString, gives the same key */
	c2 = ctx_users(users_raw, 1);
	nonce_for(c2, NOW, nonce);
	CU_ASSERT_EQUAL(run(c2, &r, NOW, &res), 0);
	auth_ctx_free(c2);

	/* an unknown USERHASH */
	uh[0] ^= 1;
	r.userhash = uh;
	nonce_for(c, NOW, nonce);
	CU_ASSERT_EQUAL(run(c, &r, NOW, &res), 401);
	CU_ASSERT_EQUAL(res.outcome, AUTH_UNKNOWN_USER);
	auth_ctx_free(c);
}

static void test_unknown_user_and_realm(void)
{
	const char *users[] = { "alice:wonderland" };
	struct auth_ctx *c = ctx_users(users, 1);
	char nonce[STUN_NONCE_MAX];
	uint8_t key[STUN_KEY_MAX];
	size_t klen;
	struct auth_result res;
	struct req r;

	CU_ASSERT_EQUAL(run_user(c, "mallory", "x", 0, I_MI, NOW, &res), 401);
	CU_ASSERT_EQUAL(res.outcome, AUTH_UNKNOWN_USER);
	/* s9.2.4 bullet 4: REALM, NONCE and PASSWORD-ALGORITHMS */
	CU_ASSERT(res.realm && !strcmp(res.realm, REALM));
	CU_ASSERT(res.nonce[0]);
	CU_ASSERT_EQUAL(res.n_pw_algs, 2);
	CU_ASSERT_EQUAL(run_user(c, "alic", "wonderland", 0, I_MI, NOW, &res), 401);
	CU_ASSERT_EQUAL(run_user(c, "alicee", "wonderland", 0, I_MI, NOW, &res), 401);
	CU_ASSERT_EQUAL(run_user(c, "alice", "Wonderland", 0, I_MI, NOW, &res), 401);
	CU_ASSERT_EQUAL(res.outcome, AUTH_BAD_INTEGRITY);

	nonce_for(c, NOW, nonce);
	CU_ASSERT_EQUAL(stun_key_long_term(STUN_PWALG_MD5, "alice", "example.com", "wonderland",
					   key), 16);
	klen = 16;
	r = (struct req){ .username = "alice", .realm = "example.com", .nonce = nonce,
			  .integ = I_MI, .key = key, .key_len = klen };
	CU_ASSERT_EQUAL(run(c, &r, NOW, &res), 401);
	CU_ASSERT_EQUAL(res.outcome, AUTH_WRONG_REALM);
	CU_ASSERT(res.realm && !strcmp(res.realm, REALM));
	auth_ctx_free(c);
}

static void test_stale_and_foreign_nonces(void)
{
	const char *users[] = { "alice:wonderland" };
	struct auth_ctx *c = ctx_users(users, 1), *other = ctx_users(users, 1);
	struct auth_params p = { .realm = REALM, .users = users, .n_users = 1,
				 .nonce_lifetime = 30 };
	struct auth_ctx *short_life = ctx_new(&p);
	char nonce[STUN_NONCE_MAX], fresh[STUN_NONCE_MAX];
	uint8_t key[STUN_KEY_MAX], bad[STUN_KEY_MAX];
	size_t klen;
	struct auth_result res;
	stun_sockaddr elsewhere = client_addr("2001:db8::7", 40000);
	struct req r;
	struct msg q;

	key_of(STUN_PWALG_MD5, "alice", "wonderland", key, &klen);
	key_of(STUN_PWALG_MD5, "alice", "nope", bad, &klen);
	nonce_for(c, NOW, nonce);
	r = (struct req){ .username = "alice", .realm = REALM, .nonce = nonce, .integ = I_MI,
			  .key = key, .key_len = klen };
	CU_ASSERT_EQUAL(run(c, &r, NOW + AUTH_NONCE_LIFETIME_DEFAULT - 1, &res), 0);
	/* expired */
	CU_ASSERT_EQUAL(run(c, &r, NOW + AUTH_NONCE_LIFETIME_DEFAULT + 1, &res), 438);
	CU_ASSERT_EQUAL(res.outcome, AUTH_STALE_NONCE);
	/* s9.2.4 bullet 6: NONCE (valid), REALM, PASSWORD-ALGORITHMS */
	CU_ASSERT(res.realm && !strcmp(res.realm, REALM));
	CU_ASSERT_EQUAL(res.n_pw_algs, 2);
	CU_ASSERT_EQUAL(res.key_len, 0);
	strcpy(fresh, res.nonce);
	CU_ASSERT_STRING_NOT_EQUAL(fresh, nonce);
	r.nonce = fresh;
	CU_ASSERT_EQUAL(run(c, &r, NOW + AUTH_NONCE_LIFETIME_DEFAULT + 1, &res), 0);
	/* a stale nonce with a wrong password: 401 first (check order) */
	r.nonce = nonce;
	r.key = bad;
	CU_ASSERT_EQUAL(run(c, &r, NOW + AUTH_NONCE_LIFETIME_DEFAULT + 1, &res), 401);
	r.key = key;
	/* another server's secret */
	CU_ASSERT_EQUAL(run(other, &r, NOW, &res), 438);
	/* another client address */
	build(&q, &r);
	CU_ASSERT_EQUAL(auth_check(c, &q.m, NOW, &elsewhere, &res, NULL), 438);
	/* made up */
	r.nonce = "obMatJos2wAAAthisisnotanonceofoursatallreally";
	CU_ASSERT_EQUAL(run(c, &r, NOW, &res), 438);
	r.nonce = "x";
	CU_ASSERT_EQUAL(run(c, &r, NOW, &res), 438);
	/* a configured lifetime */
	nonce_for(short_life, NOW, nonce);
	r.nonce = nonce;
	CU_ASSERT_EQUAL(run(short_life, &r, NOW + 29, &res), 0);
	CU_ASSERT_EQUAL(run(short_life, &r, NOW + 30, &res), 438);
	auth_ctx_free(c);
	auth_ctx_free(other);
	auth_ctx_free(short_life);
}

static void test_foreign_nonce_cookie_features(void)
{
	/* a nonce that is not ours is judged by its cookie text for the
	 * PASSWORD-ALGORITHM(S) checks, then refused with 438 */
	const char *users[] = { "alice:wonderland" };
	struct auth_ctx *c = ctx_users(users, 1);
	uint8_t key[STUN_KEY_MAX];
	size_t klen;
	struct auth_result res;
	struct req r;

	key_of(STUN_PWALG_SHA256, "alice", "wonderland", key, &klen);
	r = (struct req){ .username = "alice", .realm = REALM, .pa = STUN_PWALG_SHA256,
			  .integ = I_MI256, .key = key, .key_len = klen };
	r.nonce = "obMatJos2AAAAnotoursbutnopasswordalgorithmsbit";
	CU_ASSERT_EQUAL(run(c, &r, NOW, &res), 438);
	r.nonce = "obMatJos2gAAAnotoursandthepasswordalgorithmsbit";
	CU_ASSERT_EQUAL(run(c, &r, NOW, &res), 400);
	CU_ASSERT_EQUAL(res.outcome, AUTH_BAD_PW_ALG);
	auth_ctx_free(c);
}

static void test_keep_nonces_on_reload(void)
{
	const char *users[] = { "alice:wonderland" };
	struct auth_ctx *old = ctx_users(users, 1), *new1 = ctx_users(users, 1),
			*new2 = ctx_users(users, 1);
	struct auth_result res;
	uint8_t key[STUN_KEY_MAX];
	size_t klen;
	char nonce[STUN_NONCE_MAX];
	struct req r;

	key_of(STUN_PWALG_MD5, "alice", "wonderland", key, &klen);
	nonce_for(old, NOW, nonce);
	r = (struct req){ .username = "alice", .realm = REALM, .nonce = nonce, .integ = I_MI,
			  .key = key, .key_len = klen };
	CU_ASSERT_EQUAL(run(new1, &r, NOW, &res), 438);
	auth_ctx_keep_nonces(new2, old);
	CU_ASSERT_EQUAL(run(new2, &r, NOW, &res), 0);
	auth_ctx_free(old);
	auth_ctx_free(new1);
	auth_ctx_free(new2);
}

static int rest_req(const struct auth_ctx *c, const char *secret, uint64_t expiry,
		    uint16_t alg, struct auth_result *res)
{
	char user[64], pw[64], nonce[STUN_NONCE_MAX];
	uint8_t key[STUN_KEY_MAX];
	size_t klen;
	struct req r;

	snprintf(user, sizeof(user), "%llu:carol", (unsigned long long)expiry);
	CU_ASSERT_EQUAL_FATAL(stun_rest_password(secret, user, pw, sizeof(pw)), 0);
	nonce_for(c, NOW, nonce);
	key_of(alg ? alg : STUN_PWALG_MD5, user, pw, key, &klen);
	r = (struct req){ .username = user, .realm = REALM, .nonce = nonce,
			  .integ = alg == STUN_PWALG_SHA256 ? I_MI256 : I_MI,
			  .key = key, .key_len = klen };
	if (alg) {
		r.pa = alg;
		r.pas = algs_sha_first;
		r.n_pas = 2;
	}
	return run(c, &r, NOW, res);
}

static void test_rest_credentials(void)
{
	const char *secrets[] = { "north-wind" };
	const char *rotated[] = { "south-wind", "north-wind" };
	const char *users[] = { "alice:wonderland" };
	struct auth_params p = { .realm = REALM, .secrets = secrets, .n_secrets = 1 };
	struct auth_ctx *c = ctx_new(&p), *r2;
	struct auth_result res;

	CU_ASSERT_EQUAL(rest_req(c, "north-wind", NOW + 3600, 0, &res), 0);
	CU_ASSERT_EQUAL(res.outcome, AUTH_OK_REST);
	CU_ASSERT_EQUAL(res.rest_expiry, NOW + 3600);
	CU_ASSERT_EQUAL(strncmp(res.username, "1700003600:carol", 16), 0);
	CU_ASSERT_EQUAL(res.key_len, 16);
	CU_ASSERT_EQUAL(rest_req(c, "north-wind", NOW, 0, &res), 0);
	CU_ASSERT_EQUAL(rest_req(c, "north-wind", NOW + 3600, STUN_PWALG_SHA256, &res), 0);
	CU_ASSERT_EQUAL(res.key_len, 32);
	/* expired */
	CU_ASSERT_EQUAL(rest_req(c, "north-wind", NOW - 1, 0, &res), 401);
	CU_ASSERT_EQUAL(res.outcome, AUTH_REST_EXPIRED);
	CU_ASSERT(res.realm && !strcmp(res.realm, REALM));
	/* another secret */
	CU_ASSERT_EQUAL(rest_req(c, "south-wind", NOW + 3600, 0, &res), 401);
	CU_ASSERT_EQUAL(res.outcome, AUTH_BAD_INTEGRITY);
	/* not the REST form and no such user */
	CU_ASSERT_EQUAL(run_user(c, "carol", "x", 0, I_MI, NOW, &res), 401);
	CU_ASSERT_EQUAL(res.outcome, AUTH_UNKNOWN_USER);
	/* REST usernames have no USERHASH: no username-anonymity bit */
	challenge(c, NOW, &cli, &res);
	CU_ASSERT_EQUAL(strncmp(res.nonce + 9, "gAAA", 4), 0);
	auth_ctx_free(c);

	/* rotation: old and new secrets both accepted, plus plain users */
	p.secrets = rotated;
	p.n_secrets = 2;
	p.users = users;
	p.n_users = 1;
	r2 = ctx_new(&p);
	CU_ASSERT_EQUAL(rest_req(r2, "north-wind", NOW + 60, 0, &res), 0);
	CU_ASSERT_EQUAL(rest_req(r2, "south-wind", NOW + 60, 0, &res), 0);
	CU_ASSERT_EQUAL(rest_req(r2, "east-wind", NOW + 60, 0, &res), 401);
	CU_ASSERT_EQUAL(run_user(r2, "alice", "wonderland", 0, I_MI, NOW, &res), 0);
	CU_ASSERT_EQUAL(res.outcome, AUTH_OK);
	challenge(r2, NOW, &cli, &res);
	CU_ASSERT_EQUAL(strncmp(res.nonce + 9, "gAAA", 4), 0);
	auth_ctx_free(r2);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	fclose(f);
}

static void test_userdb(void)
{
	char path[] = "/tmp/natkit_userdb_XXXXXX";
	char text[1024], hex[65], nonce[STUN_NONCE_MAX];
	uint8_t key[STUN_KEY_MAX];
	size_t klen;
	struct auth_params p = { .realm = REALM, .userdb = path };
	struct auth_ctx *c;
	struct auth_result res;
	struct req r;
	int fd = mkstemp(path);

	CU_ASSERT_FATAL(fd >= 0);
	close(fd);
	key_of(STUN_PWALG_MD5, "dave", "cave", key, &klen);
	for (int i = 0; i < 16; i++)
		sprintf(hex + 2 * i, "%02x", key[i]);
	snprintf(text, sizeof(text),
		 "# users of example.org\n\n   \t\ncarol:pass with spaces:and colons\r\n"
		 "  # indented comment\n"
		 "dave:0x%s\n", hex);
	write_file(path, text);
	c = ctx_new(&p);
	CU_ASSERT_EQUAL(auth_ctx_user_count(c), 2);
	CU_ASSERT_STRING_EQUAL(auth_ctx_realm(c), REALM);
	CU_ASSERT_EQUAL(run_user(c, "carol", "pass with spaces:and colons", 0, I_MI, NOW, &res), 0);
	CU_ASSERT_EQUAL(run_user(c, "dave", "cave", 0, I_MI, NOW, &res), 0);
	CU_ASSERT_EQUAL(res.key_len, 16);
	/* an MD5-only user offers MD5 first, and cannot do SHA-256 */
	CU_ASSERT_EQUAL(res.pw_algs[0], 0); /* success carries no list */
	challenge(c, NOW, &cli, &res);
	CU_ASSERT_EQUAL(res.pw_algs[0], STUN_PWALG_MD5);
	CU_ASSERT_EQUAL(res.pw_algs[1], STUN_PWALG_SHA256);
	nonce_for(c, NOW, nonce);
	key_of(STUN_PWALG_SHA256, "dave", "cave", key, &klen);
	r = (struct req){ .username = "dave", .realm = REALM, .nonce = nonce,
			  .pa = STUN_PWALG_SHA256, .pas = algs_md5_first, .n_pas = 2,
			  .integ = I_MI256, .key = key, .key_len = klen };
	CU_ASSERT_EQUAL(run(c, &r, NOW, &res), 401);
	CU_ASSERT_EQUAL(res.outcome, AUTH_NO_KEY);
	auth_ctx_free(c);

	/* a SHA-256 key (0x + 64 hex) only does SHA-256 */
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", key[i]);
	snprintf(text, sizeof(text), "dave:0X%s\nerin:secret\n", hex);
	write_file(path, text);
	c = ctx_new(&p);
	nonce_for(c, NOW, nonce);
	r.pas = algs_sha_first;
	CU_ASSERT_EQUAL(run(c, &r, NOW, &res), 0);
	CU_ASSERT(res.key_len == 32 && !memcmp(res.key, key, 32));
	CU_ASSERT_EQUAL(run_user(c, "dave", "cave", 0, I_MI, NOW, &res), 401);
	CU_ASSERT_EQUAL(res.outcome, AUTH_NO_KEY);
	auth_ctx_free(c);
	unlink(path);
}

static void expect_error(const struct auth_params *p, int want, const char *part,
			 const char *secret)
{
	struct auth_ctx *c = NULL;
	char err[512] = "";
	int rc = auth_ctx_new(p, &c, err, sizeof(err));

	CU_ASSERT_EQUAL(rc, want);
	CU_ASSERT_PTR_NULL(c);
	if (!strstr(err, part))
		fprintf(stderr, "\nerror '%s' lacks '%s'\n", err, part);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, part));
	/* nothing secret in messages */
	if (secret)
		CU_ASSERT_PTR_NULL(strstr(err, secret));
}

static void test_config_errors(void)
{
	char path[] = "/tmp/natkit_userdb_XXXXXX";
	const char *bad_user[] = { "alice:wonderland", "TopSecret1" };
	const char *bad_hex[] = { "alice:0x1234TopSecret" };
	const char *dup[] = { "alice:one", "bob:two", "alice:three" };
	const char *empty_secret[] = { "ok", "" };
	const struct auth_cred creds[] = { { "frank", "" } };
	struct auth_params p = { .realm = REALM };
	char msg[128];
	int fd = mkstemp(path);

	CU_ASSERT_FATAL(fd >= 0);
	close(fd);
	p.users = bad_user;
	p.n_users = 2;
	expect_error(&p, -EINVAL, "user (value 2): expected name:password", "TopSecret1");
	p.users = bad_hex;
	p.n_users = 1;
	expect_error(&p, -EINVAL, "32 hex digits", "TopSecret");
	p.users = dup;
	p.n_users = 3;
	expect_error(&p, -EINVAL, "user 'alice' is given more than once", "three");
	p.users = NULL;
	p.n_users = 0;
	p.secrets = empty_secret;
	p.n_secrets = 2;
	expect_error(&p, -EINVAL, "static-auth-secret (value 2) is empty", NULL);
	p.secrets = NULL;
	p.n_secrets = 0;
	p.creds = creds;
	p.n_creds = 1;
	expect_error(&p, -EINVAL, "user 'frank'", NULL);
	p.creds = NULL;
	p.n_creds = 0;

	write_file(path, "# header\nalice:wonderland\n\nbob-has-no-colon-TopSecret2\n");
	p.userdb = path;
	snprintf(msg, sizeof(msg), "userdb %s:4: expected name:password", path);
	expect_error(&p, -EINVAL, msg, "TopSecret2");
	write_file(path, ":nameless-TopSecret3\n");
	snprintf(msg, sizeof(msg), "userdb %s:1:", path);
	expect_error(&p, -EINVAL, msg, "TopSecret3");
	write_file(path, "bad\x01name:pw\n");
	expect_error(&p, -EINVAL, "control characters", NULL);
	unlink(path);
	snprintf(msg, sizeof(msg), "userdb %s: No such file", path);
	expect_error(&p, -ENOENT, msg, NULL);
	p.userdb = NULL;

	p.realm = NULL;
	expect_error(&p, -EINVAL, "realm must be set", NULL);
	p.realm = "";
	expect_error(&p, -EINVAL, "realm must be set", NULL);
}

static void test_user_check(void)
{
	const char *why = NULL;

	CU_ASSERT_EQUAL(auth_user_check("alice:pw", &why), 0);
	CU_ASSERT_EQUAL(auth_user_check("alice:pw:with:colons", &why), 0);
	CU_ASSERT_EQUAL(auth_user_check("alice:0x0123456789abcdef0123456789ABCDEF", &why), 0);
	CU_ASSERT_EQUAL(auth_user_check("alice:0x0123456789abcdef0123456789ABCDEF"
					"0123456789abcdef0123456789ABCDEF", &why), 0);
	CU_ASSERT_EQUAL(auth_user_check("alice", &why), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "name:password"));
	CU_ASSERT_EQUAL(auth_user_check(":pw", &why), -EINVAL);
	CU_ASSERT_EQUAL(auth_user_check("alice:", &why), -EINVAL);
	CU_ASSERT_EQUAL(auth_user_check("alice:0x12", &why), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "hex"));
	CU_ASSERT_EQUAL(auth_user_check("alice:0xg123456789abcdef0123456789abcdef", &why), -EINVAL);
	CU_ASSERT_EQUAL(auth_user_check(NULL, &why), -EINVAL);
	CU_ASSERT_EQUAL(auth_user_check("x:y", NULL), 0);
}

static void test_creds_pairs(void)
{
	const struct auth_cred creds[] = { { "gina", "pw1" }, { "hank", "pw:2" } };
	struct auth_params p = { .realm = REALM, .creds = creds, .n_creds = 2 };
	struct auth_ctx *c = ctx_new(&p);
	struct auth_result res;

	CU_ASSERT_EQUAL(auth_ctx_user_count(c), 2);
	CU_ASSERT_EQUAL(run_user(c, "gina", "pw1", 0, I_MI, NOW, &res), 0);
	CU_ASSERT_EQUAL(run_user(c, "hank", "pw:2", STUN_PWALG_SHA256, I_MI256, NOW, &res), 0);
	auth_ctx_free(c);
}

static void test_no_sha256_offer(void)
{
	/* every user holds only an MD5 key: nothing to offer, classic 5389 */
	const char *users[] = { "ivan:0x00112233445566778899aabbccddeeff" };
	struct auth_ctx *c = ctx_users(users, 1);
	struct auth_result res;

	challenge(c, NOW, &cli, &res);
	CU_ASSERT_EQUAL(res.n_pw_algs, 0);
	CU_ASSERT_EQUAL(strncmp(res.nonce + 9, "QAAA", 4), 0); /* username anonymity only */
	auth_ctx_free(c);
}

static void test_sign_response(void)
{
	const char *users[] = { "alice:wonderland" };
	struct auth_ctx *c = ctx_users(users, 1);
	struct auth_result res = { 0 };
	struct stun_builder b;
	struct stun_msg m;
	uint8_t buf[256];
	int len;

	CU_ASSERT_EQUAL(run_user(c, "alice", "wonderland", STUN_PWALG_MD5, I_MI, NOW, &res), 0);
	stun_build_init(&b, buf, sizeof(buf), STUN_METHOD_ALLOCATE, STUN_CLASS_SUCCESS, tid);
	stun_build_u32(&b, STUN_ATTR_LIFETIME, 600);
	auth_sign(&res, &b);
	stun_build_fingerprint(&b);
	len = stun_build_finish(&b);
	CU_ASSERT_FATAL(len > 0);
	CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m, buf, (size_t)len), 0);
	CU_ASSERT(stun_msg_has(&m, STUN_ATTR_MESSAGE_INTEGRITY));
	CU_ASSERT(stun_msg_has(&m, STUN_ATTR_MESSAGE_INTEGRITY_SHA256));
	CU_ASSERT_EQUAL(stun_msg_verify_mi(&m, res.key, res.key_len), 0);
	CU_ASSERT_EQUAL(stun_msg_verify_mi256(&m, res.key, res.key_len), 0);
	auth_result_wipe(&res);
	auth_ctx_free(c);
}

static void test_bad_username(void)
{
	const char *users[] = { "alice:wonderland" };
	const char *secrets[] = { "s" };
	struct auth_params p = { .realm = REALM, .users = users, .n_users = 1,
				 .secrets = secrets, .n_secrets = 1 };
	struct auth_ctx *c = ctx_new(&p);
	struct auth_result res;
	struct stun_builder b;
	uint8_t buf[256], key[STUN_KEY_MAX];
	char nonce[STUN_NONCE_MAX];
	size_t klen;
	struct stun_msg m;
	int len;

	nonce_for(c, NOW, nonce);
	key_of(STUN_PWALG_MD5, "alice", "wonderland", key, &klen);
	stun_build_init(&b, buf, sizeof(buf), STUN_METHOD_ALLOCATE, STUN_CLASS_REQUEST, tid);
	stun_build_bytes(&b, STUN_ATTR_USERNAME, "alice\0x", 7);
	stun_build_str(&b, STUN_ATTR_REALM, REALM);
	stun_build_str(&b, STUN_ATTR_NONCE, nonce);
	stun_build_mi(&b, key, klen);
	len = stun_build_finish(&b);
	CU_ASSERT_FATAL(len > 0);
	CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m, buf, (size_t)len), 0);
	CU_ASSERT_EQUAL(auth_check(c, &m, NOW, &cli, &res, NULL), 401);
	CU_ASSERT_EQUAL(res.outcome, AUTH_BAD_USERNAME);
	auth_ctx_free(c);
}

static void test_counters_and_names(void)
{
	const char *users[] = { "alice:wonderland" };
	struct auth_ctx *c = ctx_users(users, 1);
	struct auth_counters ctr = { 0 };
	struct auth_result res;
	struct msg q;
	struct req r = { 0 };

	build(&q, &r);
	auth_check(c, &q.m, NOW, &cli, &res, &ctr);
	auth_check(c, &q.m, NOW, &cli, &res, &ctr);
	r.integ = I_MI;
	r.key = (const uint8_t *)"k";
	r.key_len = 1;
	build(&q, &r);
	auth_check(c, &q.m, NOW, &cli, &res, &ctr);
	CU_ASSERT_EQUAL(ctr.by_outcome[AUTH_CHALLENGE], 2);
	CU_ASSERT_EQUAL(ctr.by_outcome[AUTH_MISSING_ATTR], 1);
	CU_ASSERT_EQUAL(ctr.by_outcome[AUTH_OK], 0);
	for (int i = 0; i < AUTH_OUTCOME_COUNT; i++) {
		CU_ASSERT_PTR_NOT_NULL(auth_outcome_name(i));
		for (int j = 0; j < i; j++)
			CU_ASSERT(strcmp(auth_outcome_name(i), auth_outcome_name(j)) != 0);
	}
	CU_ASSERT_STRING_EQUAL(auth_outcome_name(AUTH_OUTCOME_COUNT), "unknown");
	auth_ctx_free(c);
	auth_ctx_free(NULL);
}

static const struct unit_case cases[] = {
	{ "no integrity: 401 with realm, nonce, algorithms", test_challenge },
	{ "missing USERNAME/REALM/NONCE: 400", test_missing_attributes },
	{ "MD5 key, MESSAGE-INTEGRITY (RFC 5389 client)", test_md5_classic },
	{ "SHA-256 key, MESSAGE-INTEGRITY-SHA256", test_sha256 },
	{ "MESSAGE-INTEGRITY-SHA256 preferred", test_integrity_preference },
	{ "PASSWORD-ALGORITHM(S) consistency: 400", test_password_algorithms_checks },
	{ "RFC 8489 B.1 user with USERHASH and SHA-256", test_rfc8489_b1_user },
	{ "unknown user, wrong password, wrong realm: 401", test_unknown_user_and_realm },
	{ "stale and foreign nonces: 438", test_stale_and_foreign_nonces },
	{ "foreign nonce: cookie features", test_foreign_nonce_cookie_features },
	{ "nonces kept across reload", test_keep_nonces_on_reload },
	{ "REST credentials: valid, expired, rotated", test_rest_credentials },
	{ "userdb file with MD5 and SHA-256 keys", test_userdb },
	{ "config errors name the place, never the secret", test_config_errors },
	{ "auth_user_check", test_user_check },
	{ "split name/password pairs", test_creds_pairs },
	{ "MD5-only users: no SHA-256 offer", test_no_sha256_offer },
	{ "auth_sign signs the response", test_sign_response },
	{ "malformed USERNAME", test_bad_username },
	{ "counters and outcome names", test_counters_and_names },
	{ NULL, NULL },
};

int main(void)
{
	cli = client_addr("192.0.2.1", 40000);
	return unit_run("auth", cases);
}
