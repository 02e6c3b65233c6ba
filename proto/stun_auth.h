/* stun_auth: credentials and keys (RFC 8489 s9), nonces with the security
 * feature cookie (s9.2), and TURN REST time-limited credentials. */
#ifndef NATPROTO_STUN_AUTH_H
#define NATPROTO_STUN_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define STUN_KEY_MAX 32       /* SHA-256 */
#define STUN_USERHASH_LEN 32
#define STUN_NONCE_MAX 128    /* what stun_nonce_make writes, with NUL */

/* SASLprep (RFC 4013) for RFC 5389 peers; OpaqueString (RFC 8265) is a
 * superset-compatible profile for the passwords we see. Writes a NUL-ended
 * string and returns 0; STUN_E_SASLPREP for prohibited input, STUN_E_NOSPACE
 * if it does not fit. Allocates (libidn); not for the packet path. */
int stun_saslprep(const char *in, char *out, size_t cap);

/* Short-term key (s9.1.2): SASLprep(password). Returns key length or < 0. */
int stun_key_short_term(const char *password, uint8_t *key, size_t cap);

/* Long-term key (s9.2.2): MD5 or SHA-256 of username ":" SASLprep(realm)
 * ":" SASLprep(password). Returns the key length (16 or 32) or < 0. */
int stun_key_long_term(int alg, const char *username, const char *realm,
		       const char *password, uint8_t key[STUN_KEY_MAX]);

/* USERHASH (s14.4): SHA-256(SASLprep(username) ":" SASLprep(realm)). */
int stun_userhash(const char *username, const char *realm,
		  uint8_t out[STUN_USERHASH_LEN]);

/* Security features in the nonce cookie (s9.2, s18.1). */
#define STUN_FEATURE_PW_ALGS 0x800000u  /* bit 0 of the 24: Password algorithms */
#define STUN_FEATURE_USERHASH 0x400000u /* bit 1: Username anonymity */

/* Stateless nonce: "obMatJos2" + base64(24-bit features) + base64 of an
 * expiry time and an HMAC-SHA256 (truncated to 16 bytes) over (features,
 * expiry, client address bytes) with the server secret: 45 characters.
 * now and the expiry are seconds; the caller's clock. */
int stun_nonce_make(const uint8_t *secret, size_t secret_len, uint32_t features,
		    uint64_t now, uint32_t lifetime, const void *client, size_t client_len,
		    char out[STUN_NONCE_MAX]);
/* 0 if the nonce is ours and fresh, STUN_E_STALE if expired or not ours.
 * *features receives the features it carries. */
int stun_nonce_check(const uint8_t *secret, size_t secret_len, const char *nonce,
		     size_t nonce_len, uint64_t now, const void *client,
		     size_t client_len, uint32_t *features);

/* TURN REST credentials: username "<expiry>:<user>" (or "<expiry>" alone),
 * password base64(HMAC-SHA1(secret, username)). */
int stun_rest_password(const char *secret, const char *username, char *out, size_t cap);
/* Parse the expiry out of a REST username; STUN_E_ARG if not that form. */
int stun_rest_expiry(const char *username, size_t len, uint64_t *expiry);

#endif
