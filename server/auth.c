/* auth: long-term credentials on the server side (RFC 8489 s9.2.4),
 * TURN REST credentials. See auth.h. */
#include "auth.h"
#include "conf_line.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <mbedtls/base64.h>
#include <mbedtls/platform_util.h>

#define NONCE_SECRET_LEN 32
#define NONCE_COOKIE "obMatJos2"         /* RFC 8489 s9.2 */
#define NONCE_COOKIE_LEN 13              /* "obMatJos2" + 4 base64 chars */
#define REST_PASSWORD_MAX 64             /* base64 of a 20-byte HMAC-SHA1 */

struct auth_user {
	char *name;                          /* owned */
	size_t name_len;
	uint8_t md5[STUN_KEY_MAX];           /* long-term keys (s9.2.2, s18.5.1); */
	uint8_t sha256[STUN_KEY_MAX];        /* md5 uses 16 bytes */
	bool has_md5, has_sha256;
	uint8_t userhash[STUN_USERHASH_LEN]; /* s14.4 */
};

struct auth_ctx {
	char realm[AUTH_REALM_MAX + 1];
	size_t realm_len;
	struct auth_user *users;             /* owned, sorted by name */
	size_t n_users, cap_users;
	struct auth_user **by_hash;          /* owned array, borrowed entries */
	char **secrets;                      /* owned, static-auth-secret */
	size_t n_secrets;
	uint8_t nonce_secret[NONCE_SECRET_LEN];
	uint32_t nonce_lifetime;
	uint32_t features;                   /* nonce cookie (s18.1) */
	uint16_t pw_algs[2];                 /* PASSWORD-ALGORITHMS we send */
	uint8_t n_pw_algs;
};

static const char *const outcome_names[AUTH_OUTCOME_COUNT] = {
	[AUTH_OK] = "ok",
	[AUTH_OK_REST] = "ok-rest",
	[AUTH_CHALLENGE] = "challenge",
	[AUTH_MISSING_ATTR] = "missing-attribute",
	[AUTH_BAD_PW_ALG] = "bad-password-algorithm",
	[AUTH_BAD_USERNAME] = "bad-username",
	[AUTH_WRONG_REALM] = "wrong-realm",
	[AUTH_UNKNOWN_USER] = "unknown-user",
	[AUTH_REST_EXPIRED] = "rest-expired",
	[AUTH_NO_KEY] = "no-key-for-algorithm",
	[AUTH_BAD_INTEGRITY] = "bad-integrity",
	[AUTH_STALE_NONCE] = "stale-nonce",
	[AUTH_INTERNAL] = "internal-error",
};

static const uint16_t outcome_codes[AUTH_OUTCOME_COUNT] = {
	[AUTH_OK] = 0,
	[AUTH_OK_REST] = 0,
	[AUTH_CHALLENGE] = STUN_ERR_UNAUTHORIZED,
	[AUTH_MISSING_ATTR] = STUN_ERR_BAD_REQUEST,
	[AUTH_BAD_PW_ALG] = STUN_ERR_BAD_REQUEST,
	[AUTH_BAD_USERNAME] = STUN_ERR_UNAUTHORIZED,
	[AUTH_WRONG_REALM] = STUN_ERR_UNAUTHORIZED,
	[AUTH_UNKNOWN_USER] = STUN_ERR_UNAUTHORIZED,
	[AUTH_REST_EXPIRED] = STUN_ERR_UNAUTHORIZED,
	[AUTH_NO_KEY] = STUN_ERR_UNAUTHORIZED,
	[AUTH_BAD_INTEGRITY] = STUN_ERR_UNAUTHORIZED,
	[AUTH_STALE_NONCE] = STUN_ERR_STALE_NONCE,
	[AUTH_INTERNAL] = STUN_ERR_SERVER_ERROR,
};

const char *auth_outcome_name(enum auth_outcome o)
{
	if ((unsigned)o >= AUTH_OUTCOME_COUNT)
		return "unknown";
	return outcome_names[o];
}

/* ---- user lines ---- */

struct user_spec {
	const char *name, *password; /* into a caller's buffer */
	size_t name_len;
	const char *hex;             /* "0x..." key form, or NULL */
	size_t hex_len;
};

static bool all_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

static bool name_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return n > 0 && n <= AUTH_USERNAME_MAX;
}

/* Validate a (name, password) pair; note the 0x key form. */
static int cred_parse(const char *name, size_t name_len, const char *password,
		      struct user_spec *u, const char **why)
{
	memset(u, 0, sizeof(*u));
	*why = "expected " AUTH_USER_ACCEPTED;
	if (!name || !password || !password[0])
		return -EINVAL;
	u->name = name;
	u->name_len = name_len;
	u->password = password;
	if (!name_ok(u->name, u->name_len)) {
		*why = "the name must be 1-512 bytes without control characters";
		return -EINVAL;
	}
	if (password[0] != '0' || (password[1] != 'x' && password[1] != 'X'))
		return 0;
	u->hex = password + 2;
	u->hex_len = strlen(u->hex);
	if ((u->hex_len != 32 && u->hex_len != 64) || !all_hex(u->hex, u->hex_len)) {
		*why = "a key after 0x must be 32 hex digits (MD5) or 64 (SHA-256)";
		return -EINVAL;
	}
	return 0;
}

/* Split "name:secret" at the first ':'. */
static int spec_parse(const char *s, struct user_spec *u, const char **why)
{
	const char *colon = strchr(s, ':');

	if (!colon) {
		memset(u, 0, sizeof(*u));
		*why = "expected " AUTH_USER_ACCEPTED;
		return -EINVAL;
	}
	return cred_parse(s, (size_t)(colon - s), colon + 1, u, why);
}

int auth_user_check(const char *spec, const char **why)
{
	struct user_spec u;
	const char *dummy;

	if (!why)
		why = &dummy;
	if (!spec) {
		*why = "expected " AUTH_USER_ACCEPTED;
		return -EINVAL;
	}
	return spec_parse(spec, &u, why);
}

static void hex_decode(const char *hex, size_t n, uint8_t *out)
{
	for (size_t i = 0; i < n / 2; i++) {
		char b[3] = { hex[2 * i], hex[2 * i + 1], 0 };

		out[i] = (uint8_t)strtoul(b, NULL, 16);
	}
}

/* s9.2.2 and s18.5.1: derive both keys once, at load time. */
static int user_keys(const struct auth_ctx *ctx, const struct user_spec *s,
		     struct auth_user *u, const char **why)
{
	*why = "the password is refused by OpaqueString (RFC 8265)";
	if (s->hex && s->hex_len == 32) {
		hex_decode(s->hex, 32, u->md5);
		u->has_md5 = true;
	} else if (s->hex) {
		hex_decode(s->hex, 64, u->sha256);
		u->has_sha256 = true;
	} else {
		if (stun_key_long_term(STUN_PWALG_MD5, u->name, ctx->realm, s->password, u->md5) != 16)
			return -EINVAL;
		if (stun_key_long_term(STUN_PWALG_SHA256, u->name, ctx->realm, s->password,
				       u->sha256) != 32)
			return -EINVAL;
		u->has_md5 = u->has_sha256 = true;
	}
	*why = "the name is refused by OpaqueString (RFC 8265)";
	return stun_userhash(u->name, ctx->realm, u->userhash) < 0 ? -EINVAL : 0;
}

/* Add one validated user, deriving its keys. */
static int user_add(struct auth_ctx *ctx, const struct user_spec *sp, const char **why)
{
	const struct user_spec s = *sp;
	struct auth_user *u;
	int rc;

	if (ctx->n_users == ctx->cap_users) {
		size_t cap = ctx->cap_users ? ctx->cap_users * 2 : 16;
		struct auth_user *p = realloc(ctx->users, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		ctx->users = p;
		ctx->cap_users = cap;
	}
	u = &ctx->users[ctx->n_users];
	memset(u, 0, sizeof(*u));
	u->name = strndup(s.name, s.name_len);
	if (!u->name)
		return -ENOMEM;
	u->name_len = s.name_len;
	rc = user_keys(ctx, &s, u, why);
	if (rc) {
		free(u->name);
		mbedtls_platform_zeroize(u, sizeof(*u));
		return rc;
	}
	ctx->n_users++;
	return 0;
}

/* Parse and add one "name:password" line (trimmed in place). */
static int line_add(struct auth_ctx *ctx, char *line, const char **why)
{
	struct user_spec s;
	int rc = spec_parse(conf_line_trim(line), &s, why);

	return rc ? rc : user_add(ctx, &s, why);
}

static int load_user_lines(struct auth_ctx *ctx, const struct auth_params *p,
			   char *err, size_t errlen)
{
	for (size_t i = 0; i < p->n_users; i++) {
		const char *why;
		char *copy = strdup(p->users[i] ? p->users[i] : "");
		size_t len;
		int rc;

		if (!copy)
			return -ENOMEM;
		len = strlen(copy);
		rc = line_add(ctx, copy, &why);
		mbedtls_platform_zeroize(copy, len);
		free(copy);
		if (rc == -EINVAL)
			snprintf(err, errlen, "user (value %zu): %s", i + 1, why);
		if (rc)
			return rc;
	}
	return 0;
}

static int load_creds(struct auth_ctx *ctx, const struct auth_params *p,
		      char *err, size_t errlen)
{
	for (size_t i = 0; i < p->n_creds; i++) {
		const struct auth_cred *c = &p->creds[i];
		struct user_spec s;
		const char *why;
		int rc = cred_parse(c->name, c->name ? strlen(c->name) : 0, c->password, &s, &why);

		if (!rc)
			rc = user_add(ctx, &s, &why);
		if (rc == -EINVAL && c->name && name_ok(c->name, strlen(c->name)))
			snprintf(err, errlen, "user '%s': %s", c->name, why);
		else if (rc == -EINVAL)
			snprintf(err, errlen, "user (value %zu): %s", i + 1, why);
		if (rc)
			return rc;
	}
	return 0;
}

static int load_userdb(struct auth_ctx *ctx, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t n;
	int rc = 0;

	if (!f) {
		rc = -errno;
		snprintf(err, errlen, "userdb %s: %s", path, strerror(errno));
		return rc;
	}
	while (!rc && (n = getline(&line, &cap, f)) >= 0) {
		struct conf_line t;
		const char *why;

		lineno++;
		if (conf_line_split(line, CONF_LINE_WHOLE, &t) == CONF_LINE_BLANK)
			continue;
		rc = line_add(ctx, t.key, &why);
		if (rc == -EINVAL)
			snprintf(err, errlen, "userdb %s:%zu: %s", path, lineno, why);
		mbedtls_platform_zeroize(line, cap);
	}
	if (line)
		mbedtls_platform_zeroize(line, cap);
	free(line);
	fclose(f);
	return rc;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(((const struct auth_user *)a)->name, ((const struct auth_user *)b)->name);
}

static int cmp_hash(const void *a, const void *b)
{
	const struct auth_user *x = *(struct auth_user *const *)a;
	const struct auth_user *y = *(struct auth_user *const *)b;

	return memcmp(x->userhash, y->userhash, STUN_USERHASH_LEN);
}

static int index_users(struct auth_ctx *ctx, char *err, size_t errlen)
{
	if (!ctx->n_users)
		return 0;
	qsort(ctx->users, ctx->n_users, sizeof(*ctx->users), cmp_name);
	for (size_t i = 1; i < ctx->n_users; i++) {
		if (strcmp(ctx->users[i - 1].name, ctx->users[i].name))
			continue;
		snprintf(err, errlen, "user '%s' is given more than once", ctx->users[i].name);
		return -EINVAL;
	}
	ctx->by_hash = calloc(ctx->n_users, sizeof(*ctx->by_hash));
	if (!ctx->by_hash)
		return -ENOMEM;
	for (size_t i = 0; i < ctx->n_users; i++)
		ctx->by_hash[i] = &ctx->users[i];
	qsort(ctx->by_hash, ctx->n_users, sizeof(*ctx->by_hash), cmp_hash);
	return 0;
}

static int load_secrets(struct auth_ctx *ctx, const struct auth_params *p,
			char *err, size_t errlen)
{
	if (!p->n_secrets)
		return 0;
	ctx->secrets = calloc(p->n_secrets, sizeof(*ctx->secrets));
	if (!ctx->secrets)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_secrets; i++) {
		if (!p->secrets[i] || !p->secrets[i][0]) {
			snprintf(err, errlen, "static-auth-secret (value %zu) is empty", i + 1);
			return -EINVAL;
		}
		ctx->secrets[i] = strdup(p->secrets[i]);
		if (!ctx->secrets[i])
			return -ENOMEM;
		ctx->n_secrets++;
	}
	return 0;
}

/* What the 401 offers (s9.2.4 bullet 1): SHA-256 first unless some user
 * has only an MD5 key (coturn's 0x form), MD5 always; no offer at all when
 * nobody could use SHA-256. Username anonymity when every credential can
 * be found from its USERHASH (REST usernames cannot). */
static void choose_offer(struct auth_ctx *ctx)
{
	bool any_sha = ctx->n_secrets > 0 || ctx->n_users == 0, md5_only = false;

	for (size_t i = 0; i < ctx->n_users; i++) {
		any_sha |= ctx->users[i].has_sha256;
		md5_only |= !ctx->users[i].has_sha256;
	}
	ctx->features = 0;
	ctx->n_pw_algs = 0;
	if (any_sha) {
		ctx->pw_algs[0] = md5_only ? STUN_PWALG_MD5 : STUN_PWALG_SHA256;
		ctx->pw_algs[1] = md5_only ? STUN_PWALG_SHA256 : STUN_PWALG_MD5;
		ctx->n_pw_algs = 2;
		ctx->features |= STUN_FEATURE_PW_ALGS;
	}
	if (ctx->n_users && !ctx->n_secrets)
		ctx->features |= STUN_FEATURE_USERHASH;
}

static int set_realm(struct auth_ctx *ctx, const char *realm, char *err, size_t errlen)
{
	size_t n = realm ? strlen(realm) : 0;

	if (!n || n > AUTH_REALM_MAX) {
		snprintf(err, errlen, "realm must be set (1-%d bytes)", AUTH_REALM_MAX);
		return -EINVAL;
	}
	memcpy(ctx->realm, realm, n + 1);
	ctx->realm_len = n;
	return 0;
}

int auth_ctx_new(const struct auth_params *p, struct auth_ctx **out,
		 char *err, size_t errlen)
{
	struct auth_ctx *ctx = calloc(1, sizeof(*ctx));
	char dummy[8];
	int rc;

	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = 0;
	if (!ctx)
		return -ENOMEM;
	ctx->nonce_lifetime = p->nonce_lifetime ? p->nonce_lifetime : AUTH_NONCE_LIFETIME_DEFAULT;
	rc = set_realm(ctx, p->realm, err, errlen);
	if (!rc)
		rc = load_user_lines(ctx, p, err, errlen);
	if (!rc)
		rc = load_creds(ctx, p, err, errlen);
	if (!rc && p->userdb)
		rc = load_userdb(ctx, p->userdb, err, errlen);
	if (!rc)
		rc = index_users(ctx, err, errlen);
	if (!rc)
		rc = load_secrets(ctx, p, err, errlen);
	if (!rc && getrandom(ctx->nonce_secret, sizeof(ctx->nonce_secret), 0) !=
		   (ssize_t)sizeof(ctx->nonce_secret))
		rc = -EIO;
	if (rc)
		goto out;
	choose_offer(ctx);
	*out = ctx;
	return 0;
out:
	if (rc == -ENOMEM || rc == -EIO)
		snprintf(err, errlen, "auth: %s", strerror(-rc));
	auth_ctx_free(ctx);
	return rc;
}

void auth_ctx_free(struct auth_ctx *ctx)
{
	if (!ctx)
		return;
	for (size_t i = 0; i < ctx->n_users; i++)
		free(ctx->users[i].name);
	if (ctx->users)
		mbedtls_platform_zeroize(ctx->users, ctx->cap_users * sizeof(*ctx->users));
	free(ctx->users);
	free(ctx->by_hash);
	for (size_t i = 0; i < ctx->n_secrets; i++) {
		mbedtls_platform_zeroize(ctx->secrets[i], strlen(ctx->secrets[i]));
		free(ctx->secrets[i]);
	}
	free(ctx->secrets);
	mbedtls_platform_zeroize(ctx, sizeof(*ctx));
	free(ctx);
}

void auth_ctx_keep_nonces(struct auth_ctx *to, const struct auth_ctx *from)
{
	if (to && from)
		memcpy(to->nonce_secret, from->nonce_secret, sizeof(to->nonce_secret));
}

const char *auth_ctx_realm(const struct auth_ctx *ctx)
{
	return ctx->realm;
}

size_t auth_ctx_user_count(const struct auth_ctx *ctx)
{
	return ctx->n_users;
}

/* ---- lookups ---- */

struct name_key {
	const uint8_t *p;
	size_t len;
};

static int find_name(const void *key, const void *elem)
{
	const struct name_key *k = key;
	const struct auth_user *u = elem;
	size_t n = k->len < u->name_len ? k->len : u->name_len;
	int c = memcmp(k->p, u->name, n);

	if (c)
		return c;
	return k->len < u->name_len ? -1 : k->len > u->name_len;
}

static int find_hash(const void *key, const void *elem)
{
	return memcmp(key, (*(struct auth_user *const *)elem)->userhash, STUN_USERHASH_LEN);
}

static const struct auth_user *user_by_name(const struct auth_ctx *ctx, const uint8_t *p,
					    size_t len)
{
	struct name_key k = { p, len };

	if (!ctx->n_users)
		return NULL;
	return bsearch(&k, ctx->users, ctx->n_users, sizeof(*ctx->users), find_name);
}

static const struct auth_user *user_by_hash(const struct auth_ctx *ctx, const uint8_t *h)
{
	struct auth_user *const *u;

	if (!ctx->n_users)
		return NULL;
	u = bsearch(h, ctx->by_hash, ctx->n_users, sizeof(*ctx->by_hash), find_hash);
	return u ? *u : NULL;
}

/* ---- the checks of RFC 8489 s9.2.4 ---- */

/* The nonce is bound to the client's IP address and port (s9.2.4: "MUST
 * NOT choose the same NONCE for two requests unless they have the same
 * source IP address and port"). */
static size_t client_bytes(const stun_sockaddr *a, uint8_t out[18])
{
	if (!a)
		return 0;
	if (a->sa.sa_family == AF_INET) {
		memcpy(out, &a->in4.sin_addr, 4);
		memcpy(out + 4, &a->in4.sin_port, 2);
		return 6;
	}
	if (a->sa.sa_family == AF_INET6) {
		memcpy(out, &a->in6.sin6_addr, 16);
		memcpy(out + 16, &a->in6.sin6_port, 2);
		return 18;
	}
	return 0;
}

/* Security features from the nonce cookie text (s9.2): what the client
 * was told, when the nonce itself cannot be trusted. */
static uint32_t cookie_features(const struct stun_bytes *nonce)
{
	uint8_t f[4];
	size_t n = 0;

	if (nonce->len < NONCE_COOKIE_LEN || memcmp(nonce->p, NONCE_COOKIE, 9))
		return 0;
	if (mbedtls_base64_decode(f, sizeof(f), &n, nonce->p + 9, 4) || n != 3)
		return 0;
	return (uint32_t)f[0] << 16 | (uint32_t)f[1] << 8 | f[2];
}

/* 0 if the nonce is ours and fresh; *features what it carries. */
static bool nonce_fresh(const struct auth_ctx *ctx, const struct stun_msg *m, uint64_t now,
			const stun_sockaddr *client, uint32_t *features)
{
	uint8_t cb[18];
	size_t cn = client_bytes(client, cb);

	if (stun_nonce_check(ctx->nonce_secret, sizeof(ctx->nonce_secret),
			     (const char *)m->nonce.p, m->nonce.len, now, cb, cn, features) == 0)
		return true;
	*features = cookie_features(&m->nonce);
	return false;
}

static bool pw_algs_match(const struct auth_ctx *ctx, const struct stun_msg *m)
{
	if (m->n_pw_algs != ctx->n_pw_algs)
		return false;
	for (size_t i = 0; i < m->n_pw_algs; i++)
		if (m->pw_algs[i].alg != ctx->pw_algs[i] || m->pw_algs[i].params.len)
			return false;
	return true;
}

static bool pw_alg_listed(const struct stun_msg *m)
{
	for (size_t i = 0; i < m->n_pw_algs; i++)
		if (m->pw_algs[i].alg == m->pw_alg.alg)
			return true;
	return false;
}

/* s9.2.4 bullet 3: which key the request was signed with. */
static enum auth_outcome pick_alg(const struct auth_ctx *ctx, const struct stun_msg *m,
				  uint32_t features, uint16_t *alg)
{
	bool pa = stun_msg_has(m, STUN_ATTR_PASSWORD_ALGORITHM);
	bool pas = stun_msg_has(m, STUN_ATTR_PASSWORD_ALGORITHMS);

	*alg = STUN_PWALG_MD5;
	if (!pa && !pas)
		return AUTH_OK; /* "processed as though PASSWORD-ALGORITHM were MD5" */
	if ((features & STUN_FEATURE_PW_ALGS) &&
	    (!pa || !pas || !pw_algs_match(ctx, m) || !pw_alg_listed(m)))
		return AUTH_BAD_PW_ALG;
	if (!pa)
		return AUTH_OK;
	/* s18.5.1: MD5 and SHA-256 take no parameters */
	if ((m->pw_alg.alg != STUN_PWALG_MD5 && m->pw_alg.alg != STUN_PWALG_SHA256) ||
	    m->pw_alg.params.len)
		return AUTH_BAD_PW_ALG;
	*alg = m->pw_alg.alg;
	return AUTH_OK;
}

/* s9.2.4 bullet 5: MESSAGE-INTEGRITY-SHA256 when present, else
 * MESSAGE-INTEGRITY. */
static enum auth_outcome verify(const struct stun_msg *m, const uint8_t *key, size_t len)
{
	int rc;

	if (stun_msg_has(m, STUN_ATTR_MESSAGE_INTEGRITY_SHA256))
		rc = stun_msg_verify_mi256(m, key, len);
	else
		rc = stun_msg_verify_mi(m, key, len);
	if (rc == STUN_E_CRYPTO)
		return AUTH_INTERNAL;
	return rc ? AUTH_BAD_INTEGRITY : AUTH_OK;
}

static enum auth_outcome check_user(const struct auth_user *u, const struct stun_msg *m,
				    struct auth_result *res)
{
	const uint8_t *key = res->pw_alg == STUN_PWALG_SHA256 ? u->sha256 : u->md5;
	size_t len = res->pw_alg == STUN_PWALG_SHA256 ? 32 : 16;
	enum auth_outcome o;

	memcpy(res->username, u->name, u->name_len + 1);
	res->username_len = u->name_len;
	if (res->pw_alg == STUN_PWALG_SHA256 ? !u->has_sha256 : !u->has_md5)
		return AUTH_NO_KEY;
	o = verify(m, key, len);
	if (o != AUTH_OK)
		return o;
	memcpy(res->key, key, len);
	res->key_len = len;
	return AUTH_OK;
}

/* TURN REST: password = base64(HMAC-SHA1(secret, username)); every
 * configured secret is tried, so secrets can be rotated. */
static enum auth_outcome check_rest(const struct auth_ctx *ctx, const struct stun_msg *m,
				    uint64_t now, struct auth_result *res)
{
	char pw[REST_PASSWORD_MAX];
	enum auth_outcome o = AUTH_BAD_INTEGRITY;

	if (stun_rest_expiry(res->username, res->username_len, &res->rest_expiry) < 0)
		return AUTH_UNKNOWN_USER;
	if (res->rest_expiry < now)
		return AUTH_REST_EXPIRED;
	for (size_t i = 0; i < ctx->n_secrets && o == AUTH_BAD_INTEGRITY; i++) {
		int len;

		if (stun_rest_password(ctx->secrets[i], res->username, pw, sizeof(pw)) < 0)
			return AUTH_INTERNAL;
		len = stun_key_long_term(res->pw_alg, res->username, ctx->realm, pw, res->key);
		if (len < 0) {
			o = AUTH_INTERNAL;
			break;
		}
		res->key_len = (size_t)len;
		o = verify(m, res->key, res->key_len);
	}
	mbedtls_platform_zeroize(pw, sizeof(pw));
	return o == AUTH_OK ? AUTH_OK_REST : o;
}

/* s9.2.4 bullets 4 and 5: find the credential and verify the integrity. */
static enum auth_outcome check_credentials(const struct auth_ctx *ctx, const struct stun_msg *m,
					   uint64_t now, struct auth_result *res)
{
	const struct auth_user *u;

	if (stun_msg_has(m, STUN_ATTR_USERHASH)) {
		u = m->userhash.len == STUN_USERHASH_LEN ? user_by_hash(ctx, m->userhash.p) : NULL;
		return u ? check_user(u, m, res) : AUTH_UNKNOWN_USER;
	}
	if (!m->username.len || m->username.len > AUTH_USERNAME_MAX ||
	    memchr(m->username.p, 0, m->username.len))
		return AUTH_BAD_USERNAME;
	memcpy(res->username, m->username.p, m->username.len);
	res->username[m->username.len] = 0;
	res->username_len = m->username.len;
	u = user_by_name(ctx, m->username.p, m->username.len);
	if (u)
		return check_user(u, m, res);
	if (!ctx->n_secrets)
		return AUTH_UNKNOWN_USER;
	return check_rest(ctx, m, now, res);
}

static bool realm_ours(const struct auth_ctx *ctx, const struct stun_msg *m)
{
	return m->realm.len == ctx->realm_len && !memcmp(m->realm.p, ctx->realm, ctx->realm_len);
}

static enum auth_outcome run_checks(const struct auth_ctx *ctx, const struct stun_msg *m,
				    uint64_t now, const stun_sockaddr *client,
				    struct auth_result *res)
{
	bool mi = stun_msg_has(m, STUN_ATTR_MESSAGE_INTEGRITY);
	bool mi256 = stun_msg_has(m, STUN_ATTR_MESSAGE_INTEGRITY_SHA256);
	uint32_t features = 0;
	enum auth_outcome o;
	bool fresh;

	/* bullet 1: no integrity -> 401 with REALM and NONCE */
	if (!mi && !mi256)
		return AUTH_CHALLENGE;
	/* bullet 2: USERNAME or USERHASH, REALM and NONCE, else 400 */
	if ((!stun_msg_has(m, STUN_ATTR_USERNAME) && !stun_msg_has(m, STUN_ATTR_USERHASH)) ||
	    !stun_msg_has(m, STUN_ATTR_REALM) || !stun_msg_has(m, STUN_ATTR_NONCE))
		return AUTH_MISSING_ATTR;
	fresh = nonce_fresh(ctx, m, now, client, &features);
	/* bullet 3: PASSWORD-ALGORITHM(S) consistency, else 400 */
	o = pick_alg(ctx, m, features, &res->pw_alg);
	if (o != AUTH_OK)
		return o;
	/* bullets 4 and 5: a valid user and integrity, else 401 */
	if (!realm_ours(ctx, m))
		return AUTH_WRONG_REALM;
	o = check_credentials(ctx, m, now, res);
	if (o != AUTH_OK && o != AUTH_OK_REST)
		return o;
	/* bullet 6: a nonce no longer valid (or never ours) -> 438 */
	if (!fresh)
		return AUTH_STALE_NONCE;
	/* After the checks: MESSAGE-INTEGRITY-SHA256 in the response unless
	 * the request was processed as MD5 without PASSWORD-ALGORITHM(S);
	 * a client that signed with one attribute gets that one too. */
	res->sign_mi256 = mi256 || stun_msg_has(m, STUN_ATTR_PASSWORD_ALGORITHM) ||
			  stun_msg_has(m, STUN_ATTR_PASSWORD_ALGORITHMS);
	res->sign_mi = mi || !res->sign_mi256;
	return o;
}

/* What a 401 or 438 carries: REALM, a fresh NONCE for this client, and
 * PASSWORD-ALGORITHMS when the nonce says we offer them (s9.2.4). */
static int fill_challenge(const struct auth_ctx *ctx, uint64_t now,
			  const stun_sockaddr *client, struct auth_result *res)
{
	uint8_t cb[18];
	size_t cn = client_bytes(client, cb);

	if (stun_nonce_make(ctx->nonce_secret, sizeof(ctx->nonce_secret), ctx->features, now,
			    ctx->nonce_lifetime, cb, cn, res->nonce) < 0)
		return -1;
	res->realm = ctx->realm;
	memcpy(res->pw_algs, ctx->pw_algs, sizeof(res->pw_algs));
	res->n_pw_algs = ctx->n_pw_algs;
	return 0;
}

static void count(struct auth_counters *c, enum auth_outcome o)
{
	if (!c)
		return;
	atomic_store_explicit(&c->by_outcome[o],
			      atomic_load_explicit(&c->by_outcome[o], memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

int auth_check(const struct auth_ctx *ctx, const struct stun_msg *req, uint64_t now,
	       const stun_sockaddr *client, struct auth_result *res,
	       struct auth_counters *ctr)
{
	enum auth_outcome o;

	memset(res, 0, sizeof(*res));
	o = run_checks(ctx, req, now, client, res);
	if (outcome_codes[o] == STUN_ERR_UNAUTHORIZED || outcome_codes[o] == STUN_ERR_STALE_NONCE) {
		if (fill_challenge(ctx, now, client, res))
			o = AUTH_INTERNAL;
	}
	if (outcome_codes[o]) {
		/* an error carries no key */
		mbedtls_platform_zeroize(res->key, sizeof(res->key));
		res->key_len = 0;
		res->sign_mi = res->sign_mi256 = false;
	}
	res->outcome = o;
	res->code = outcome_codes[o];
	count(ctr, o);
	return res->code;
}

void auth_build_error(const struct auth_result *res, struct stun_builder *b)
{
	stun_build_error(b, res->code, NULL);
	if (res->realm)
		stun_build_str(b, STUN_ATTR_REALM, res->realm);
	if (res->nonce[0])
		stun_build_str(b, STUN_ATTR_NONCE, res->nonce);
	if (res->n_pw_algs)
		stun_build_pw_algs(b, res->pw_algs, res->n_pw_algs);
}

void auth_sign(const struct auth_result *res, struct stun_builder *b)
{
	if (res->sign_mi)
		stun_build_mi(b, res->key, res->key_len);
	if (res->sign_mi256)
		stun_build_mi256(b, res->key, res->key_len);
}

void auth_result_wipe(struct auth_result *res)
{
	mbedtls_platform_zeroize(res, sizeof(*res));
}
