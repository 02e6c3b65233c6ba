/* CUnit: proto/stun_auth (SASLprep, keys, USERHASH, nonces, TURN REST).
 * Expected digests were computed independently with Python's hashlib/hmac. */
#include "stun_auth.h"
#include "stun_msg.h"
#include "alloc_count.h"
#include "unit_util.h"

#include <string.h>

/* RFC 5769 s2.4 / RFC 8489 B.1 credentials (UTF-8). */
#define MATRIX_USER "\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83\xe3\x82\xaf\xe3\x82\xb9"
#define MATRIX_PASS "The\xc2\xadM\xc2\xaatr\xe2\x85\xa8"

static void hex(const char *s, uint8_t *out)
{
	size_t i;

	for (i = 0; s[2 * i]; i++) {
		unsigned v;

		sscanf(s + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
}

static void test_saslprep(void)
{
	char out[64];

	/* RFC 5769 s2.4: soft hyphen removed, U+00AA -> "a", U+2168 -> "IX". */
	CU_ASSERT_EQUAL(stun_saslprep(MATRIX_PASS, out, sizeof(out)), 0);
	CU_ASSERT_STRING_EQUAL(out, "TheMatrIX");
	CU_ASSERT_EQUAL(stun_saslprep("plain", out, sizeof(out)), 0);
	CU_ASSERT_STRING_EQUAL(out, "plain");
	/* RFC 4013 s2.3: ASCII control characters are prohibited. */
	CU_ASSERT_EQUAL(stun_saslprep("bad\x07pw", out, sizeof(out)), STUN_E_SASLPREP);
	CU_ASSERT_EQUAL(stun_saslprep("TheMatrIX", out, 9), STUN_E_NOSPACE);
	CU_ASSERT_EQUAL(stun_saslprep(NULL, out, sizeof(out)), STUN_E_ARG);
}

static void test_short_term_key(void)
{
	uint8_t key[64];
	int n = stun_key_short_term("VOkJxbRl1RmTxUk/WvJxBt", key, sizeof(key));

	CU_ASSERT_EQUAL_FATAL(n, 22);
	CU_ASSERT(!memcmp(key, "VOkJxbRl1RmTxUk/WvJxBt", 22));
	CU_ASSERT_EQUAL(stun_key_short_term(MATRIX_PASS, key, sizeof(key)), 9);
	CU_ASSERT(!memcmp(key, "TheMatrIX", 9));
	CU_ASSERT_EQUAL(stun_key_short_term("VOkJxbRl1RmTxUk/WvJxBt", key, 4), STUN_E_NOSPACE);
}

static void test_long_term_keys(void)
{
	uint8_t key[STUN_KEY_MAX], want[32];

	hex("e8ca7ad59d5eb0518e312911d2dab2a9", want);
	CU_ASSERT_EQUAL(stun_key_long_term(STUN_PWALG_MD5, MATRIX_USER, "example.org",
					   MATRIX_PASS, key), 16);
	CU_ASSERT(!memcmp(key, want, 16));
	hex("dd295a613b9058c3c23d6dc7165bda072304d989c9d0af3a8c7e184b4f9bb4a1", want);
	CU_ASSERT_EQUAL(stun_key_long_term(STUN_PWALG_SHA256, MATRIX_USER, "example.org",
					   MATRIX_PASS, key), 32);
	CU_ASSERT(!memcmp(key, want, 32));
	CU_ASSERT_EQUAL(stun_key_long_term(7, "u", "r", "p", key), STUN_E_ARG);
	CU_ASSERT_EQUAL(stun_key_long_term(STUN_PWALG_MD5, "u", "r", "bad\x01", key),
			STUN_E_SASLPREP);
}

/* RFC 8489 B.1: USERHASH of the vector's username and realm. */
static void test_userhash(void)
{
	uint8_t h[STUN_USERHASH_LEN], want[32];

	hex("4a3cf38fef6992bda952c6780417da0f24819415569e60b205c46e41407f1704", want);
	CU_ASSERT_EQUAL(stun_userhash(MATRIX_USER, "example.org", h), 0);
	CU_ASSERT(!memcmp(h, want, 32));
}

static const uint8_t secret[] = "nonce-secret";
static const uint8_t client_a[] = { 192, 0, 2, 1, 0x80, 0x55 };
static const uint8_t client_b[] = { 192, 0, 2, 2, 0x80, 0x55 };

static void test_nonce_roundtrip(void)
{
	char n[STUN_NONCE_MAX];
	uint32_t feat = 0;

	CU_ASSERT_EQUAL_FATAL(stun_nonce_make(secret, 12, STUN_FEATURE_PW_ALGS, 1000, 600,
					      client_a, 6, n), 0);
	/* RFC 8489 s9.2: "obMatJos2" + base64 of the 3 feature bytes, bit 0 = MSB. */
	CU_ASSERT(!strncmp(n, "obMatJos2gAAA", 13));
	CU_ASSERT(strlen(n) < 128);
	CU_ASSERT_EQUAL(stun_nonce_check(secret, 12, n, strlen(n), 1000, client_a, 6, &feat), 0);
	CU_ASSERT_EQUAL(feat, STUN_FEATURE_PW_ALGS);
	CU_ASSERT_EQUAL(stun_nonce_check(secret, 12, n, strlen(n), 1599, client_a, 6, NULL), 0);
	CU_ASSERT_EQUAL(stun_nonce_make(secret, 12, STUN_FEATURE_PW_ALGS | STUN_FEATURE_USERHASH,
					0, 1, NULL, 0, n), 0);
	CU_ASSERT(!strncmp(n, "obMatJos2wAAA", 13));
	CU_ASSERT_EQUAL(stun_nonce_make(secret, 12, 0, 0, 1, NULL, 0, n), 0);
	CU_ASSERT(!strncmp(n, "obMatJos2AAAA", 13));
}

static void test_nonce_rejects(void)
{
	char n[STUN_NONCE_MAX], t[STUN_NONCE_MAX];
	size_t len;

	CU_ASSERT_EQUAL_FATAL(stun_nonce_make(secret, 12, STUN_FEATURE_PW_ALGS, 1000, 600,
					      client_a, 6, n), 0);
	len = strlen(n);
	/* expired at now + lifetime */
	CU_ASSERT_EQUAL(stun_nonce_check(secret, 12, n, len, 1600, client_a, 6, NULL), STUN_E_STALE);
	/* another client address, another secret */
	CU_ASSERT_EQUAL(stun_nonce_check(secret, 12, n, len, 1000, client_b, 6, NULL), STUN_E_STALE);
	CU_ASSERT_EQUAL(stun_nonce_check((const uint8_t *)"other", 5, n, len, 1000, client_a, 6, NULL),
			STUN_E_STALE);
	/* bid-down: features cleared in the cookie (s9.2.1) */
	memcpy(t, n, len + 1);
	memcpy(t + 9, "AAAA", 4);
	CU_ASSERT_EQUAL(stun_nonce_check(secret, 12, t, len, 1000, client_a, 6, NULL), STUN_E_STALE);
	/* a flipped payload character, truncation, not ours at all */
	memcpy(t, n, len + 1);
	t[len - 5] = t[len - 5] == 'A' ? 'B' : 'A';
	CU_ASSERT_EQUAL(stun_nonce_check(secret, 12, t, len, 1000, client_a, 6, NULL), STUN_E_STALE);
	CU_ASSERT_EQUAL(stun_nonce_check(secret, 12, n, len - 1, 1000, client_a, 6, NULL), STUN_E_STALE);
	CU_ASSERT_EQUAL(stun_nonce_check(secret, 12, "f//499k954d6OL34oL9FSTvy64sA", 28, 1000,
					 client_a, 6, NULL), STUN_E_STALE);
}

static void test_rest(void)
{
	char pw[64];
	uint64_t exp = 0;

	CU_ASSERT_EQUAL(stun_rest_password("north-secret", "1700000000:alice", pw, sizeof(pw)), 0);
	CU_ASSERT_STRING_EQUAL(pw, "g+jb180fcj+xlpA/2mP60OdIgU0=");
	CU_ASSERT_EQUAL(stun_rest_password("north-secret", "1700000000:alice", pw, 28), STUN_E_NOSPACE);
	CU_ASSERT_EQUAL(stun_rest_expiry("1700000000:alice", 16, &exp), 0);
	CU_ASSERT_EQUAL(exp, 1700000000u);
	CU_ASSERT_EQUAL(stun_rest_expiry("1700000001", 10, &exp), 0);
	CU_ASSERT_EQUAL(exp, 1700000001u);
	CU_ASSERT_EQUAL(stun_rest_expiry("alice:1700000000", 16, &exp), STUN_E_ARG);
	CU_ASSERT_EQUAL(stun_rest_expiry(":alice", 6, &exp), STUN_E_ARG);
	CU_ASSERT_EQUAL(stun_rest_expiry("12x4:alice", 10, &exp), STUN_E_ARG);
	CU_ASSERT_EQUAL(stun_rest_expiry("99999999999999999999:a", 22, &exp), STUN_E_ARG);
	CU_ASSERT_EQUAL(stun_rest_expiry("", 0, &exp), STUN_E_ARG);
}

/* Plain-ASCII realm and password skip libidn (SASLprep is the identity
 * there): same key as H(user:realm:password) computed independently, and
 * the per-request pieces of TURN REST and nonce checks allocate nothing. */
static void test_ascii_keys_allocate_nothing(void)
{
	uint8_t key[STUN_KEY_MAX], want[32];
	char pw[64], n[STUN_NONCE_MAX];

	alloc_calls = 0;
	alloc_armed = 1;
	CU_ASSERT_EQUAL(stun_key_long_term(STUN_PWALG_MD5, "1700000000:alice", "natkit",
					   "Pass word~1", key), 16);
	hex("73ed596fe640eaafb8b41f83661d1ac7", want);
	CU_ASSERT(!memcmp(key, want, 16));
	CU_ASSERT_EQUAL(stun_key_long_term(STUN_PWALG_SHA256, "1700000000:alice", "natkit",
					   "Pass word~1", key), 32);
	hex("72c049172979e1e9a63ab1b7f1e2ef0e70eb9c60ddbe471d63f968e7ecc082ac", want);
	CU_ASSERT(!memcmp(key, want, 32));
	CU_ASSERT_EQUAL(stun_rest_password("north-secret", "1700000000:alice", pw, sizeof(pw)), 0);
	CU_ASSERT_EQUAL(stun_nonce_make(secret, 12, 0, 1000, 600, client_a, 6, n), 0);
	CU_ASSERT_EQUAL(stun_nonce_check(secret, 12, n, strlen(n), 1000, client_a, 6, NULL), 0);
	alloc_armed = 0;
	if (ALLOC_COUNTING)
		CU_ASSERT_EQUAL(alloc_calls, 0);
	/* a control character still goes to libidn, which refuses it */
	CU_ASSERT_EQUAL(stun_key_long_term(STUN_PWALG_MD5, "u", "natkit", "tab\there", key),
			STUN_E_SASLPREP);
}

static const struct unit_case cases[] = {
	{ "SASLprep (RFC 4013) via libidn", test_saslprep },
	{ "short-term key", test_short_term_key },
	{ "long-term keys MD5 and SHA-256", test_long_term_keys },
	{ "USERHASH (RFC 8489 B.1)", test_userhash },
	{ "nonce cookie and stateless expiry", test_nonce_roundtrip },
	{ "nonce rejections", test_nonce_rejects },
	{ "TURN REST credentials", test_rest },
	{ "ASCII keys, REST and nonces allocate nothing", test_ascii_keys_allocate_nothing },
	{ NULL, NULL },
};

int main(void)
{
	return unit_run("stun_auth", cases);
}
