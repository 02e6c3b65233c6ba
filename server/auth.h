/* auth: the server side of the STUN long-term credential mechanism
 * (RFC 8489 s9.2.4) with USERHASH, PASSWORD-ALGORITHMS and
 * MESSAGE-INTEGRITY-SHA256, stateless HMAC nonces, and TURN REST
 * time-limited credentials (static-auth-secret).
 *
 * An auth_ctx is built once from config values (keys are derived at load
 * time, never per request, except REST keys which depend on the request's
 * username), shared read-only by every worker, and replaced whole on
 * reload. auth_check() is a pure function of (ctx, decoded request, now,
 * client address). Nothing here logs; no error message carries a
 * password, key or HMAC. */
#ifndef STUND_AUTH_H
#define STUND_AUTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stun_auth.h"
#include "stun_msg.h"

#define AUTH_USERNAME_MAX 512          /* RFC 8489 s14.3: < 513 bytes */
#define AUTH_REALM_MAX 762             /* RFC 8489 s14.9: < 763 bytes */
#define AUTH_NONCE_LIFETIME_DEFAULT 600 /* seconds, as coturn's stale-nonce */

/* One user as the config splits it: password is a plaintext password or
 * "0x<32 hex>" (an MD5 key, coturn's form) or "0x<64 hex>" (SHA-256). */
struct auth_cred {
	const char *name;
	const char *password;
};

/* Plain inputs, as the config holds them. */
struct auth_params {
	const char *realm;           /* realm (required) */
	const char *const *users;    /* `user` values: "name:password" or
				      * "name:0x<32 hex>" or "name:0x<64 hex>" */
	size_t n_users;
	const struct auth_cred *creds; /* the same, already split (config.c's
					* users, which include its userdb's) */
	size_t n_creds;
	const char *userdb;          /* path of a file of such lines, or NULL.
				      * Not when creds already hold the file's
				      * users: a user given twice is an error */
	const char *const *secrets;  /* static-auth-secret values (rotation) */
	size_t n_secrets;
	uint32_t nonce_lifetime;     /* seconds; 0 = the default */
};

struct auth_ctx;

/* Build a context. Errors: -EINVAL with a message in err such as
 * "userdb /etc/users:7: expected name:password or name:0x<hex key>",
 * -errno when the userdb cannot be read, -ENOMEM. */
int auth_ctx_new(const struct auth_params *p, struct auth_ctx **out,
		 char *err, size_t errlen);
/* Wipes every key and secret before freeing. NULL is fine. */
void auth_ctx_free(struct auth_ctx *ctx);
/* On reload: let nonces issued by `from` stay valid under `to`. */
void auth_ctx_keep_nonces(struct auth_ctx *to, const struct auth_ctx *from);

const char *auth_ctx_realm(const struct auth_ctx *ctx);
size_t auth_ctx_user_count(const struct auth_ctx *ctx);

/* Check one `user` value (for config messages with file:line). 0, or
 * -EINVAL and *why says what is accepted (never echoing the password). */
int auth_user_check(const char *spec, const char **why);
#define AUTH_USER_ACCEPTED \
	"name:password, name:0x<32 hex digits> (an MD5 key) or " \
	"name:0x<64 hex digits> (a SHA-256 key)"

/* Every outcome is counted; the name is a metric label. */
enum auth_outcome {
	AUTH_OK = 0,         /* user from `user`/`userdb` */
	AUTH_OK_REST,        /* TURN REST credential */
	AUTH_CHALLENGE,      /* 401: no integrity (the first request) */
	AUTH_MISSING_ATTR,   /* 400: integrity without USERNAME/USERHASH, REALM or NONCE */
	AUTH_BAD_PW_ALG,     /* 400: PASSWORD-ALGORITHM(S) inconsistent */
	AUTH_BAD_USERNAME,   /* 401: malformed USERNAME */
	AUTH_WRONG_REALM,    /* 401: REALM is not ours */
	AUTH_UNKNOWN_USER,   /* 401 */
	AUTH_REST_EXPIRED,   /* 401: REST username past its expiry */
	AUTH_NO_KEY,         /* 401: the user has no key for that algorithm */
	AUTH_BAD_INTEGRITY,  /* 401 */
	AUTH_STALE_NONCE,    /* 438: expired or not ours */
	AUTH_INTERNAL,       /* 500: a crypto call failed */
	AUTH_OUTCOME_COUNT
};
const char *auth_outcome_name(enum auth_outcome o);

/* Per-worker counters (single writer), read by the metrics code. */
struct auth_counters {
	_Atomic uint64_t by_outcome[AUTH_OUTCOME_COUNT];
};

/* The verdict, and what the response must carry. Holds a key: wipe it
 * with auth_result_wipe() when done. */
struct auth_result {
	enum auth_outcome outcome;
	uint16_t code;              /* 0 if authenticated, else a STUN error code */

	/* Authenticated: who, and the key that signs the response. */
	char username[AUTH_USERNAME_MAX + 1]; /* the account name (for
					       * USERHASH: the user it hashes) */
	size_t username_len;
	uint16_t pw_alg;            /* STUN_PWALG_MD5 or STUN_PWALG_SHA256 */
	uint8_t key[STUN_KEY_MAX];
	size_t key_len;
	bool sign_mi, sign_mi256;   /* which integrity the response carries */
	uint64_t rest_expiry;       /* AUTH_OK_REST: the username's expiry */

	/* An error: the attributes its response must carry. */
	const char *realm;          /* borrowed from the ctx; NULL = none */
	char nonce[STUN_NONCE_MAX]; /* "" = none */
	uint16_t pw_algs[2];
	uint8_t n_pw_algs;          /* 0 = no PASSWORD-ALGORITHMS */
};

/* Authenticate a request per RFC 8489 s9.2.4. `client` is the request's
 * source (the nonce is bound to it). ctr may be NULL. Returns res->code. */
int auth_check(const struct auth_ctx *ctx, const struct stun_msg *req, uint64_t now,
	       const stun_sockaddr *client, struct auth_result *res,
	       struct auth_counters *ctr);

/* Error response body: ERROR-CODE and then REALM, NONCE and
 * PASSWORD-ALGORITHMS as the result says. */
void auth_build_error(const struct auth_result *res, struct stun_builder *b);
/* Success response: MESSAGE-INTEGRITY and/or -SHA256 (call last, before
 * FINGERPRINT). */
void auth_sign(const struct auth_result *res, struct stun_builder *b);
void auth_result_wipe(struct auth_result *res);

#endif
