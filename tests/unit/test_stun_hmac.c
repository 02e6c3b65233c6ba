/* CUnit: proto/stun_hmac (RFC 2104 HMAC on stack hash contexts).
 * Vectors: RFC 2202 (HMAC-SHA1) and RFC 4231 (HMAC-SHA256), checked
 * independently with Python's hmac module; plus agreement with mbedTLS's
 * own mbedtls_md_hmac() for every key length around the block size, and a
 * count of allocations (none) where the allocator can be interposed. */
#include "stun_hmac.h"
#include "stun_msg.h"
#include "alloc_count.h"
#include "unit_util.h"

#include <string.h>
#include <mbedtls/md.h>

static void hex(const char *s, uint8_t *out)
{
	for (size_t i = 0; s[2 * i]; i++) {
		unsigned v;

		sscanf(s + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
}

struct vec {
	enum stun_hmac_alg alg;
	uint8_t key_byte;
	size_t keylen;
	const char *msg;
	const char *mac;
};

static const struct vec vecs[] = {
	/* RFC 2202 s3 test cases 1 and 6 (key longer than the block). */
	{ STUN_HMAC_SHA1, 0x0b, 20, "Hi There", "b617318655057264e28bc0b6fb378c8ef146be00" },
	{ STUN_HMAC_SHA1, 0xaa, 80, "Test Using Larger Than Block-Size Key - Hash Key First",
	  "aa4ae5e15272d00e95705637ce8a3b55ed402112" },
	/* RFC 4231 s4.2 and s4.7. */
	{ STUN_HMAC_SHA256, 0x0b, 20, "Hi There",
	  "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
	{ STUN_HMAC_SHA256, 0xaa, 131, "Test Using Larger Than Block-Size Key - Hash Key First",
	  "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54" },
};

static void test_vectors(void)
{
	for (size_t i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++) {
		const struct vec *v = &vecs[i];
		uint8_t key[256], want[32], got[32];
		size_t n = stun_hmac_len(v->alg);

		memset(key, v->key_byte, v->keylen);
		hex(v->mac, want);
		CU_ASSERT_EQUAL(strlen(v->mac), 2 * n);
		CU_ASSERT_EQUAL(stun_hmac(v->alg, key, v->keylen, (const uint8_t *)v->msg,
					  strlen(v->msg), got), 0);
		CU_ASSERT(!memcmp(got, want, n));
	}
}

/* Any split of the message gives the one-shot answer. */
static void test_streaming(void)
{
	const uint8_t *msg = (const uint8_t *)"The quick brown fox jumps over the lazy dog, twice over";
	size_t len = strlen((const char *)msg);
	uint8_t one[32], parts[32];
	struct stun_hmac c;

	CU_ASSERT_EQUAL(stun_hmac(STUN_HMAC_SHA256, (const uint8_t *)"k", 1, msg, len, one), 0);
	for (size_t cut = 0; cut <= len; cut++) {
		CU_ASSERT_EQUAL(stun_hmac_start(&c, STUN_HMAC_SHA256, (const uint8_t *)"k", 1), 0);
		CU_ASSERT_EQUAL(stun_hmac_update(&c, msg, cut), 0);
		CU_ASSERT_EQUAL(stun_hmac_update(&c, msg + cut, len - cut), 0);
		CU_ASSERT_EQUAL(stun_hmac_finish(&c, parts), 0);
		CU_ASSERT(!memcmp(one, parts, 32));
	}
}

/* Same bytes as mbedTLS's HMAC for key lengths 0..130 (below, at and above
 * the 64-byte block) and a few message lengths. */
static void test_matches_mbedtls(void)
{
	const enum stun_hmac_alg algs[2] = { STUN_HMAC_SHA1, STUN_HMAC_SHA256 };
	const mbedtls_md_type_t mds[2] = { MBEDTLS_MD_SHA1, MBEDTLS_MD_SHA256 };
	uint8_t key[131], msg[200], a[32], b[32];

	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i * 7 + 1);
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)(i * 13 + 5);
	for (int k = 0; k < 2; k++) {
		const mbedtls_md_info_t *md = mbedtls_md_info_from_type(mds[k]);

		for (size_t kl = 0; kl <= sizeof(key); kl++) {
			size_t ml = (kl * 3) % sizeof(msg);

			CU_ASSERT_EQUAL(stun_hmac(algs[k], key, kl, msg, ml, a), 0);
			CU_ASSERT_EQUAL(mbedtls_md_hmac(md, key, kl, msg, ml, b), 0);
			CU_ASSERT(!memcmp(a, b, stun_hmac_len(algs[k])));
		}
	}
}

static void test_bad_args(void)
{
	uint8_t out[32];

	CU_ASSERT_EQUAL(stun_hmac((enum stun_hmac_alg)7, (const uint8_t *)"k", 1,
				  (const uint8_t *)"m", 1, out), STUN_E_ARG);
	CU_ASSERT_EQUAL(stun_hmac(STUN_HMAC_SHA1, NULL, 3, (const uint8_t *)"m", 1, out),
			STUN_E_ARG);
	/* An empty key is a key (all-zero K'). */
	CU_ASSERT_EQUAL(stun_hmac(STUN_HMAC_SHA1, NULL, 0, (const uint8_t *)"m", 1, out), 0);
}

/* The point of the module: MESSAGE-INTEGRITY(-SHA256) build and verify
 * allocate nothing (mbedtls_md_setup() did, every call). */
static void test_no_allocation(void)
{
	static const uint8_t tid[STUN_TID_LEN] = { 1, 2, 3 };
	const uint8_t key[16] = { 9 };
	uint8_t buf[256];
	struct stun_builder b;
	struct stun_msg m;
	mbedtls_md_context_t ctx;
	int len;

	if (!ALLOC_COUNTING) /* AddressSanitizer owns the allocator */
		return;
	/* The counter works: mbedTLS's generic md allocates. */
	alloc_armed = 1;
	mbedtls_md_init(&ctx);
	CU_ASSERT_EQUAL(mbedtls_md_setup(&ctx, mbedtls_md_info_from_type(MBEDTLS_MD_SHA1), 1), 0);
	mbedtls_md_free(&ctx);
	alloc_armed = 0;
	CU_ASSERT(alloc_calls > 0);

	alloc_calls = 0;
	alloc_armed = 1;
	stun_build_init(&b, buf, sizeof(buf), STUN_METHOD_BINDING, STUN_CLASS_REQUEST, tid);
	stun_build_str(&b, STUN_ATTR_USERNAME, "user");
	stun_build_mi(&b, key, sizeof(key));
	stun_build_mi256(&b, key, sizeof(key));
	stun_build_fingerprint(&b);
	len = stun_build_finish(&b);
	CU_ASSERT_FATAL(len > 0);
	CU_ASSERT_EQUAL(stun_msg_parse(&m, buf, (size_t)len), 0);
	CU_ASSERT_EQUAL(stun_msg_verify_mi(&m, key, sizeof(key)), 0);
	CU_ASSERT_EQUAL(stun_msg_verify_mi256(&m, key, sizeof(key)), 0);
	alloc_armed = 0;
	CU_ASSERT_EQUAL(alloc_calls, 0);
}

int main(void)
{
	static const struct unit_case cases[] = {
		{ "RFC 2202 / RFC 4231 vectors", test_vectors },
		{ "streaming in pieces", test_streaming },
		{ "same as mbedtls_md_hmac", test_matches_mbedtls },
		{ "bad arguments", test_bad_args },
		{ "MI build/verify allocate nothing", test_no_allocation },
		{ NULL, NULL },
	};

	return unit_run("stun_hmac", cases);
}
