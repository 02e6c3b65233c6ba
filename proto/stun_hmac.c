/* stun_hmac: RFC 2104 HMAC over mbedTLS SHA-1 / SHA-256, no allocation.
 *
 *   H(K' XOR opad, H(K' XOR ipad, text))
 *
 * with K' the key zero-padded to the 64-byte block, or H(key) padded when
 * the key is longer than a block (RFC 2104 s2). */
#include "stun_hmac.h"
#include "stun_msg.h"

#include <string.h>

#include <mbedtls/platform_util.h>
#include <mbedtls/version.h>

/* mbedTLS 3 dropped the _ret suffix that 2.x uses for the int-returning
 * forms. */
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define sha1_starts mbedtls_sha1_starts
#define sha1_update mbedtls_sha1_update
#define sha1_finish mbedtls_sha1_finish
#define sha256_starts mbedtls_sha256_starts
#define sha256_update mbedtls_sha256_update
#define sha256_finish mbedtls_sha256_finish
#else
#define sha1_starts mbedtls_sha1_starts_ret
#define sha1_update mbedtls_sha1_update_ret
#define sha1_finish mbedtls_sha1_finish_ret
#define sha256_starts mbedtls_sha256_starts_ret
#define sha256_update mbedtls_sha256_update_ret
#define sha256_finish mbedtls_sha256_finish_ret
#endif

size_t stun_hmac_len(enum stun_hmac_alg alg)
{
	return alg == STUN_HMAC_SHA256 ? 32 : 20;
}

/* ---- the plain hash, by alg ---- */

static int h_start(struct stun_hmac *c)
{
	if (c->alg == STUN_HMAC_SHA256) {
		mbedtls_sha256_init(&c->h.sha256);
		return sha256_starts(&c->h.sha256, 0);
	}
	mbedtls_sha1_init(&c->h.sha1);
	return sha1_starts(&c->h.sha1);
}

static int h_update(struct stun_hmac *c, const uint8_t *p, size_t n)
{
	if (c->alg == STUN_HMAC_SHA256)
		return sha256_update(&c->h.sha256, p, n);
	return sha1_update(&c->h.sha1, p, n);
}

static int h_finish(struct stun_hmac *c, uint8_t *out)
{
	int rc;

	if (c->alg == STUN_HMAC_SHA256) {
		rc = sha256_finish(&c->h.sha256, out);
		mbedtls_sha256_free(&c->h.sha256);
		return rc;
	}
	rc = sha1_finish(&c->h.sha1, out);
	mbedtls_sha1_free(&c->h.sha1);
	return rc;
}

/* H(data) in one go, for a key longer than the block. */
static int h_once(struct stun_hmac *c, const uint8_t *p, size_t n, uint8_t *out)
{
	if (h_start(c) || h_update(c, p, n))
		return -1;
	return h_finish(c, out);
}

/* ---- HMAC ---- */

static void wipe(struct stun_hmac *c)
{
	mbedtls_platform_zeroize(c, sizeof(*c));
}

int stun_hmac_start(struct stun_hmac *c, enum stun_hmac_alg alg, const uint8_t *key,
		    size_t keylen)
{
	uint8_t k[STUN_HMAC_BLOCK] = { 0 }, ipad[STUN_HMAC_BLOCK];
	int rc = STUN_E_CRYPTO;

	if (alg != STUN_HMAC_SHA1 && alg != STUN_HMAC_SHA256)
		return STUN_E_ARG;
	if (!key && keylen)
		return STUN_E_ARG;
	c->alg = alg;
	if (keylen > STUN_HMAC_BLOCK) {
		if (h_once(c, key, keylen, k))
			goto out;
	} else if (keylen) {
		memcpy(k, key, keylen);
	}
	for (size_t i = 0; i < STUN_HMAC_BLOCK; i++) {
		ipad[i] = k[i] ^ 0x36;
		c->opad[i] = k[i] ^ 0x5c;
	}
	if (h_start(c) || h_update(c, ipad, sizeof(ipad)))
		goto out;
	rc = 0;
out:
	mbedtls_platform_zeroize(k, sizeof(k));
	mbedtls_platform_zeroize(ipad, sizeof(ipad));
	if (rc)
		wipe(c);
	return rc;
}

int stun_hmac_update(struct stun_hmac *c, const uint8_t *p, size_t n)
{
	if (!n)
		return 0;
	return h_update(c, p, n) ? STUN_E_CRYPTO : 0;
}

int stun_hmac_finish(struct stun_hmac *c, uint8_t *out)
{
	uint8_t inner[STUN_HMAC_MAX];
	size_t n = stun_hmac_len(c->alg);
	int rc = STUN_E_CRYPTO;

	if (h_finish(c, inner))
		goto out;
	if (h_start(c) || h_update(c, c->opad, sizeof(c->opad)) || h_update(c, inner, n) ||
	    h_finish(c, out))
		goto out;
	rc = 0;
out:
	mbedtls_platform_zeroize(inner, sizeof(inner));
	wipe(c);
	return rc;
}

int stun_hmac(enum stun_hmac_alg alg, const uint8_t *key, size_t keylen, const uint8_t *msg,
	      size_t len, uint8_t *out)
{
	struct stun_hmac c;
	int rc = stun_hmac_start(&c, alg, key, keylen);

	if (rc)
		return rc;
	rc = stun_hmac_update(&c, msg, len);
	if (rc) {
		wipe(&c);
		return rc;
	}
	return stun_hmac_finish(&c, out);
}
