/* stun_hmac: HMAC-SHA1 and HMAC-SHA256 (RFC 2104) built on mbedTLS's hash
 * functions, with every context in the caller's struct (on its stack):
 * nothing is allocated, unlike mbedtls_md_setup(), so MESSAGE-INTEGRITY,
 * MESSAGE-INTEGRITY-SHA256 and nonce MACs cost no malloc per packet. */
#ifndef NATPROTO_STUN_HMAC_H
#define NATPROTO_STUN_HMAC_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/sha1.h>
#include <mbedtls/sha256.h>

enum stun_hmac_alg { STUN_HMAC_SHA1, STUN_HMAC_SHA256 };

#define STUN_HMAC_BLOCK 64 /* both hashes: 64-byte blocks */
#define STUN_HMAC_MAX 32   /* the longest output (SHA-256) */

struct stun_hmac {
	enum stun_hmac_alg alg;
	union {
		mbedtls_sha1_context sha1;
		mbedtls_sha256_context sha256;
	} h;
	uint8_t opad[STUN_HMAC_BLOCK]; /* K' XOR 0x5c, for the outer hash */
};

/* Output length of alg: 20 or 32. */
size_t stun_hmac_len(enum stun_hmac_alg alg);

/* Streaming: start with the key, update with the message in pieces,
 * finish into out (stun_hmac_len bytes). Each returns 0 or STUN_E_CRYPTO
 * (STUN_E_ARG for a bad alg or NULL key with keylen); finish and a failed
 * start wipe the context (it holds key material). */
int stun_hmac_start(struct stun_hmac *c, enum stun_hmac_alg alg, const uint8_t *key,
		    size_t keylen);
int stun_hmac_update(struct stun_hmac *c, const uint8_t *p, size_t n);
int stun_hmac_finish(struct stun_hmac *c, uint8_t *out);

/* One shot over msg[0..len). */
int stun_hmac(enum stun_hmac_alg alg, const uint8_t *key, size_t keylen, const uint8_t *msg,
	      size_t len, uint8_t *out);

#endif
