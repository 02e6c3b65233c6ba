/* stun_auth: SASLprep, short- and long-term keys, USERHASH, stateless
 * nonces with the RFC 8489 s9.2 nonce cookie, TURN REST credentials. */
#include "stun_auth.h"
#include "stun_hmac.h"
#include "stun_msg.h"
#include "stun_rd.h"

#include <stdlib.h>
#include <string.h>
#include <stringprep.h>
#include <mbedtls/base64.h>
#include <mbedtls/constant_time.h>
#include <mbedtls/md5.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>
#include <mbedtls/version.h>

#define NONCE_COOKIE "obMatJos2"
#define NONCE_COOKIE_LEN 9
#define NONCE_MAC_LEN 16
#define NONCE_RAW_LEN (8 + NONCE_MAC_LEN)       /* expiry + truncated MAC */
#define NONCE_LEN (NONCE_COOKIE_LEN + 4 + 32)  /* cookie, features, payload */

/* SASLprep into a fresh string (RFC 4013 via libidn); caller frees. */
static int prep_alloc(const char *in, char **out)
{
	if (!in)
		return STUN_E_ARG;
	if (stringprep_profile(in, out, "SASLprep", 0) != STRINGPREP_OK)
		return STUN_E_SASLPREP;
	return 0;
}

/* SASLprep in into out (cap bytes), NUL-terminated or not; returns the
 * prepared length or a negative error. */
static int prep_copy(const char *in, void *out, size_t cap, bool nul)
{
	char *p = NULL;
	size_t n;
	int rc = prep_alloc(in, &p);

	if (rc)
		return rc;
	n = strlen(p);
	if (!out || n + nul > cap || n > 0x7fffffff) {
		rc = STUN_E_NOSPACE;
		goto out;
	}
	memcpy(out, p, n + nul);
	rc = (int)n;
out:
	free(p);
	return rc;
}

int stun_saslprep(const char *in, char *out, size_t cap)
{
	int rc = prep_copy(in, out, cap, true);

	return rc < 0 ? rc : 0;
}

/* RFC 8489 s9.1.1: key = OpaqueString(password). */
int stun_key_short_term(const char *password, uint8_t *key, size_t cap)
{
	return prep_copy(password, key, cap, false);
}

/* SASLprep (RFC 4013) leaves printable ASCII as it is: no mapping,
 * normalisation or prohibition applies to 0x20-0x7E. Such strings skip
 * libidn, which allocates. */
static bool plain_ascii(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			return false;
	return true;
}

/* SASLprep of in: in itself when plain ASCII, else a fresh string in
 * *owned (caller frees). */
static int prep_view(const char *in, const char **out, char **owned)
{
	int rc;

	*owned = NULL;
	if (in && plain_ascii(in)) {
		*out = in;
		return 0;
	}
	rc = prep_alloc(in, owned);
	*out = *owned;
	return rc;
}

/* mbedTLS 3 dropped the _ret suffix of 2.x's int-returning forms. */
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define md5_starts mbedtls_md5_starts
#define md5_update mbedtls_md5_update
#define md5_finish mbedtls_md5_finish
#define sha256_starts mbedtls_sha256_starts
#define sha256_update mbedtls_sha256_update
#define sha256_finish mbedtls_sha256_finish
#else
#define md5_starts mbedtls_md5_starts_ret
#define md5_update mbedtls_md5_update_ret
#define md5_finish mbedtls_md5_finish_ret
#define sha256_starts mbedtls_sha256_starts_ret
#define sha256_update mbedtls_sha256_update_ret
#define sha256_finish mbedtls_sha256_finish_ret
#endif

/* MD5 or SHA-256 on the stack (mbedtls_md_setup() would allocate). */
struct joined {
	bool sha256;
	union {
		mbedtls_md5_context md5;
		mbedtls_sha256_context sha256;
	} c;
};

static int joined_update(struct joined *h, const char *p, size_t n)
{
	if (h->sha256)
		return sha256_update(&h->c.sha256, (const uint8_t *)p, n);
	return md5_update(&h->c.md5, (const uint8_t *)p, n);
}

/* Hash of a ":"-joined list of strings (NULL-terminated array); returns
 * the digest length. */
static int hash_joined(bool sha256, const char *const *parts, uint8_t *out)
{
	struct joined h = { .sha256 = sha256 };
	int rc;

	if (sha256) {
		mbedtls_sha256_init(&h.c.sha256);
		rc = sha256_starts(&h.c.sha256, 0);
	} else {
		mbedtls_md5_init(&h.c.md5);
		rc = md5_starts(&h.c.md5);
	}
	for (size_t i = 0; !rc && parts[i]; i++) {
		if (i)
			rc = joined_update(&h, ":", 1);
		if (!rc)
			rc = joined_update(&h, parts[i], strlen(parts[i]));
	}
	if (!rc)
		rc = sha256 ? sha256_finish(&h.c.sha256, out) : md5_finish(&h.c.md5, out);
	mbedtls_platform_zeroize(&h, sizeof(h)); /* the password went through it */
	if (rc)
		return STUN_E_CRYPTO;
	return sha256 ? 32 : 16;
}

/* RFC 8489 s9.2.2 (and s18.5 for the algorithm numbers):
 * key = H(username ":" OpaqueString(realm) ":" OpaqueString(password)).
 * Allocates nothing when realm and password are plain ASCII (TURN REST
 * keys are derived per request). */
int stun_key_long_term(int alg, const char *username, const char *realm,
		       const char *password, uint8_t key[STUN_KEY_MAX])
{
	const char *r = NULL, *p = NULL;
	char *ra = NULL, *pa = NULL;
	int rc;

	if (alg != STUN_PWALG_MD5 && alg != STUN_PWALG_SHA256)
		return STUN_E_ARG;
	if (!username || !key)
		return STUN_E_ARG;
	rc = prep_view(realm, &r, &ra);
	if (!rc)
		rc = prep_view(password, &p, &pa);
	if (!rc) {
		const char *parts[] = { username, r, p, NULL };

		rc = hash_joined(alg == STUN_PWALG_SHA256, parts, key);
	}
	free(ra);
	if (pa)
		mbedtls_platform_zeroize(pa, strlen(pa));
	free(pa);
	return rc;
}

/* RFC 8489 s14.4: SHA-256(OpaqueString(username) ":" OpaqueString(realm)). */
int stun_userhash(const char *username, const char *realm, uint8_t out[STUN_USERHASH_LEN])
{
	char *u = NULL, *r = NULL;
	int rc;

	if (!out)
		return STUN_E_ARG;
	rc = prep_alloc(username, &u);
	if (!rc)
		rc = prep_alloc(realm, &r);
	if (!rc) {
		const char *parts[] = { u, r, NULL };

		rc = hash_joined(true, parts, out);
		rc = rc < 0 ? rc : 0;
	}
	free(u);
	free(r);
	return rc;
}

/* ---- nonces ---- */

/* MAC over (features, expiry, client address bytes) with the secret: the
 * features are covered so a bid-down (s9.2.1) edit of the cookie fails. */
static int nonce_mac(const uint8_t *secret, size_t secret_len, const uint8_t feat[3],
		     const uint8_t exp[8], const void *client, size_t client_len,
		     uint8_t mac[32])
{
	uint8_t scratch[STUN_HMAC_MAX];
	struct stun_hmac c;
	int rc = stun_hmac_start(&c, STUN_HMAC_SHA256, secret, secret_len);

	if (rc)
		return STUN_E_CRYPTO;
	if (stun_hmac_update(&c, feat, 3) || stun_hmac_update(&c, exp, 8) ||
	    stun_hmac_update(&c, client, client_len)) {
		stun_hmac_finish(&c, scratch); /* wipes the context */
		return STUN_E_CRYPTO;
	}
	return stun_hmac_finish(&c, mac);
}

static void put64(uint8_t p[8], uint64_t v)
{
	stun_put32(p, (uint32_t)(v >> 32));
	stun_put32(p + 4, (uint32_t)v);
}

/* "obMatJos2" + base64(features, 3 bytes, bit 0 = MSB; s9.2) followed by
 * base64(expiry || HMAC-SHA256(...)[0..16)): 45 characters in all. */
int stun_nonce_make(const uint8_t *secret, size_t secret_len, uint32_t features,
		    uint64_t now, uint32_t lifetime, const void *client, size_t client_len,
		    char out[STUN_NONCE_MAX])
{
	uint8_t feat[3], raw[NONCE_RAW_LEN], mac[32];
	size_t olen;
	int rc;

	if (!secret || !out || (!client && client_len) || features > 0xFFFFFF)
		return STUN_E_ARG;
	feat[0] = (uint8_t)(features >> 16);
	feat[1] = (uint8_t)(features >> 8);
	feat[2] = (uint8_t)features;
	put64(raw, now + lifetime);
	rc = nonce_mac(secret, secret_len, feat, raw, client, client_len, mac);
	if (rc)
		return rc;
	memcpy(raw + 8, mac, NONCE_MAC_LEN);
	memcpy(out, NONCE_COOKIE, NONCE_COOKIE_LEN);
	if (mbedtls_base64_encode((uint8_t *)out + NONCE_COOKIE_LEN, 5, &olen, feat, 3) ||
	    mbedtls_base64_encode((uint8_t *)out + NONCE_COOKIE_LEN + 4,
				  STUN_NONCE_MAX - NONCE_COOKIE_LEN - 4, &olen, raw, sizeof(raw)))
		return STUN_E_CRYPTO;
	return 0;
}

/* Split a nonce of ours into features and raw payload. */
static int nonce_decode(const char *nonce, size_t nonce_len, uint8_t feat[3],
			uint8_t raw[NONCE_RAW_LEN])
{
	const uint8_t *n = (const uint8_t *)nonce;
	size_t olen;

	if (!nonce || nonce_len != NONCE_LEN || memcmp(nonce, NONCE_COOKIE, NONCE_COOKIE_LEN))
		return STUN_E_STALE;
	if (mbedtls_base64_decode(feat, 3, &olen, n + NONCE_COOKIE_LEN, 4) || olen != 3)
		return STUN_E_STALE;
	if (mbedtls_base64_decode(raw, NONCE_RAW_LEN, &olen, n + NONCE_COOKIE_LEN + 4, 32) ||
	    olen != NONCE_RAW_LEN)
		return STUN_E_STALE;
	return 0;
}

int stun_nonce_check(const uint8_t *secret, size_t secret_len, const char *nonce,
		     size_t nonce_len, uint64_t now, const void *client,
		     size_t client_len, uint32_t *features)
{
	uint8_t feat[3], raw[NONCE_RAW_LEN], mac[32];
	uint64_t expiry;
	int rc;

	if (!secret || (!client && client_len))
		return STUN_E_ARG;
	rc = nonce_decode(nonce, nonce_len, feat, raw);
	if (rc)
		return rc;
	rc = nonce_mac(secret, secret_len, feat, raw, client, client_len, mac);
	if (rc)
		return rc;
	if (mbedtls_ct_memcmp(mac, raw + 8, NONCE_MAC_LEN))
		return STUN_E_STALE;
	expiry = (uint64_t)stun_get32(raw) << 32 | stun_get32(raw + 4);
	if (now >= expiry)
		return STUN_E_STALE;
	if (features)
		*features = (uint32_t)feat[0] << 16 | (uint32_t)feat[1] << 8 | feat[2];
	return 0;
}

/* ---- TURN REST credentials (draft-uberti-behave-turn-rest-00) ---- */

int stun_rest_password(const char *secret, const char *username, char *out, size_t cap)
{
	uint8_t mac[20];
	size_t olen;

	if (!secret || !username || !out)
		return STUN_E_ARG;
	if (stun_hmac(STUN_HMAC_SHA1, (const uint8_t *)secret, strlen(secret),
		      (const uint8_t *)username, strlen(username), mac))
		return STUN_E_CRYPTO;
	if (cap < 29)
		return STUN_E_NOSPACE;
	if (mbedtls_base64_encode((uint8_t *)out, cap, &olen, mac, sizeof(mac)))
		return STUN_E_NOSPACE;
	return 0;
}

/* "<expiry>" or "<expiry>:<user>", expiry in decimal Unix seconds. */
int stun_rest_expiry(const char *username, size_t len, uint64_t *expiry)
{
	uint64_t v = 0;
	size_t i;

	if (!username || !expiry || len == 0)
		return STUN_E_ARG;
	for (i = 0; i < len && username[i] != ':'; i++) {
		if (username[i] < '0' || username[i] > '9' || i >= 19)
			return STUN_E_ARG;
		v = v * 10 + (uint64_t)(username[i] - '0');
	}
	if (i == 0)
		return STUN_E_ARG;
	*expiry = v;
	return 0;
}
