/* CUnit: the STUN codec (proto/stun_msg, stun_attr, stun_build) against the
 * RFC 5769 vectors, RFC 8489 appendix B.1, per-attribute round trips and a
 * table of malformed messages. */
#include "stun_msg.h"
#include "stun_attr.h"
#include "stun_auth.h"
#include "unit_util.h"

#include <mbedtls/md.h>

#include <arpa/inet.h>
#include <string.h>

static const uint8_t short_key[] = "VOkJxbRl1RmTxUk/WvJxBt";
#define SHORT_KEY_LEN (sizeof(short_key) - 1)

/* Walk the raw TLVs of a message (test-side, independent of the parser). */
static size_t raw_types(const uint8_t *msg, size_t len, uint16_t *types, size_t cap)
{
	size_t off = STUN_HDR_LEN, n = 0;

	while (off + 4 <= len && n < cap) {
		uint16_t alen = (uint16_t)(msg[off + 2] << 8 | msg[off + 3]);

		types[n++] = (uint16_t)(msg[off] << 8 | msg[off + 1]);
		off += 4 + ((alen + 3u) & ~3u);
	}
	return n;
}

/* Re-encode a parsed message from its struct, in the original attribute
 * order: integrity and fingerprint recomputed with key, text attributes
 * padded with pad (RFC 5769 pads with spaces), the rest via the table. */
static int reencode(const struct stun_msg *m, const uint8_t *key, size_t keylen,
		    uint8_t pad, uint8_t *out, size_t cap)
{
	struct stun_builder b;
	uint16_t types[32];
	size_t i, n = raw_types(m->raw, m->raw_len, types, 32);

	stun_build_init(&b, out, cap, m->method, m->cls, m->tid);
	for (i = 0; i < n; i++) {
		const struct stun_attr_def *d = stun_attr_find(types[i]);

		if (types[i] == STUN_ATTR_MESSAGE_INTEGRITY)
			stun_build_mi(&b, key, keylen);
		else if (types[i] == STUN_ATTR_MESSAGE_INTEGRITY_SHA256)
			stun_build_mi256(&b, key, keylen);
		else if (types[i] == STUN_ATTR_FINGERPRINT)
			stun_build_fingerprint(&b);
		else if (d && d->kind == STUN_AK_BYTES) {
			const struct stun_bytes *v = (const void *)((const uint8_t *)m + d->off);

			stun_build_bytes_pad(&b, d->type, v->p, v->len, pad);
		} else
			stun_attr_encode(&b, m, types[i]);
	}
	return stun_build_finish(&b);
}

static void check_reencode(const struct stun_msg *m, const uint8_t *key, size_t keylen, uint8_t pad)
{
	uint8_t out[1024];
	int n = reencode(m, key, keylen, pad, out, sizeof(out));

	CU_ASSERT_EQUAL_FATAL(n, (int)m->raw_len);
	CU_ASSERT(memcmp(out, m->raw, m->raw_len) == 0);
}

static void test_rfc5769_request(void)
{
	uint8_t buf[256];
	size_t len = unit_load_vector("rfc5769_2_1.bin", buf, sizeof(buf));
	struct stun_msg m;

	CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m, buf, len), 0);
	CU_ASSERT_EQUAL(m.method, STUN_METHOD_BINDING);
	CU_ASSERT_EQUAL(m.cls, STUN_CLASS_REQUEST);
	CU_ASSERT_FALSE(m.classic);
	CU_ASSERT(stun_msg_has(&m, STUN_ATTR_SOFTWARE));
	CU_ASSERT(m.software.len == 16 && !memcmp(m.software.p, "STUN test client", 16));
	CU_ASSERT(m.username.len == 9 && !memcmp(m.username.p, "evtj:h6vY", 9));
	CU_ASSERT_EQUAL(m.priority, 0x6e0001ffu);
	CU_ASSERT_EQUAL(m.ice_controlled, 0x932ff9b151263b36ull);
	CU_ASSERT(stun_msg_has(&m, STUN_ATTR_FINGERPRINT));
	CU_ASSERT_EQUAL(stun_msg_verify_mi(&m, short_key, SHORT_KEY_LEN), 0);
	CU_ASSERT_EQUAL(stun_msg_verify_mi(&m, (const uint8_t *)"wrong", 5), STUN_E_INTEGRITY);
	CU_ASSERT_EQUAL(stun_msg_verify_mi256(&m, short_key, SHORT_KEY_LEN), STUN_E_NO_INTEGRITY);
	check_reencode(&m, short_key, SHORT_KEY_LEN, 0x20);
}

static void check_response(const char *file, int family, const char *ip)
{
	uint8_t buf[256], want[16];
	size_t len = unit_load_vector(file, buf, sizeof(buf));
	struct stun_msg m;
	char s[64];

	CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m, buf, len), 0);
	CU_ASSERT_EQUAL(m.cls, STUN_CLASS_SUCCESS);
	CU_ASSERT(m.software.len == 11 && !memcmp(m.software.p, "test vector", 11));
	CU_ASSERT_FATAL(stun_msg_has(&m, STUN_ATTR_XOR_MAPPED_ADDRESS));
	CU_ASSERT_EQUAL(stun_sockaddr_family(&m.xor_mapped), family);
	CU_ASSERT_EQUAL(stun_sockaddr_port(&m.xor_mapped), 32853);
	CU_ASSERT_EQUAL(inet_pton(family, ip, want), 1);
	if (family == AF_INET) {
		CU_ASSERT(!memcmp(&m.xor_mapped.in4.sin_addr, want, 4));
	} else {
		CU_ASSERT(!memcmp(&m.xor_mapped.in6.sin6_addr, want, 16));
	}
	stun_sockaddr_str(&m.xor_mapped, s, sizeof(s));
	CU_ASSERT(strstr(s, ":32853") != NULL);
	CU_ASSERT_EQUAL(stun_msg_verify_mi(&m, short_key, SHORT_KEY_LEN), 0);
	check_reencode(&m, short_key, SHORT_KEY_LEN, 0x20);
}

static void test_rfc5769_ipv4_response(void)
{
	check_response("rfc5769_2_2.bin", AF_INET, "192.0.2.1");
}

static void test_rfc5769_ipv6_response(void)
{
	check_response("rfc5769_2_3.bin", AF_INET6, "2001:db8:1234:5678:11:2233:4455:6677");
}

#define MATRIX_USER "\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83\xe3\x82\xaf\xe3\x82\xb9"
#define MATRIX_PASS "The\xc2\xadM\xc2\xaatr\xe2\x85\xa8"

/* RFC 5769 s2.4: long-term credentials; the key needs SASLprep of the
 * password ("TheMatrIX"), and the vector pads with zero bytes. */
static void test_rfc5769_long_term(void)
{
	uint8_t buf[256], key[STUN_KEY_MAX];
	size_t len = unit_load_vector("rfc5769_2_4.bin", buf, sizeof(buf));
	struct stun_msg m;
	int klen;

	CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m, buf, len), 0);
	CU_ASSERT(m.username.len == 18 && !memcmp(m.username.p, MATRIX_USER, 18));
	CU_ASSERT(m.realm.len == 11 && !memcmp(m.realm.p, "example.org", 11));
	CU_ASSERT(m.nonce.len == 28 && !memcmp(m.nonce.p, "f//499k954d6OL34oL9FSTvy64sA", 28));
	CU_ASSERT_FALSE(stun_msg_has(&m, STUN_ATTR_FINGERPRINT));
	klen = stun_key_long_term(STUN_PWALG_MD5, MATRIX_USER, "example.org", MATRIX_PASS, key);
	CU_ASSERT_EQUAL_FATAL(klen, 16);
	CU_ASSERT_EQUAL(stun_msg_verify_mi(&m, key, (size_t)klen), 0);
	/* Without SASLprep the key is wrong. */
	CU_ASSERT_EQUAL(stun_msg_verify_mi(&m, (const uint8_t *)MATRIX_PASS, 13), STUN_E_INTEGRITY);
	check_reencode(&m, key, (size_t)klen, 0);
}

/* RFC 8489 appendix B.1 (MESSAGE-INTEGRITY-SHA256 and USERHASH).
 * The vector as printed has length field 0x009c = 156, the size of the
 * whole message: it counts the 20-byte header, which s5 says it must not
 * (the body is 136 = 0x0088 bytes). This is the known erratum of B.1
 * (see /work/shared/rfc/README.md). What we check, and why:
 *  1. the printed bytes are rejected with STUN_E_LENGTH (s5, s6.3): we do
 *     not special-case a broken vector in the parser;
 *  2. with the length corrected to 0x0088 the message parses; USERHASH
 *     equals SHA-256(username ":" realm) (s14.4); NONCE (with its
 *     "obMatJos2" cookie) and REALM decode;
 *  3. the printed MESSAGE-INTEGRITY-SHA256 equals HMAC-SHA256, keyed with
 *     SHA-256(username ":" realm ":" OpaqueString(password)) (s9.2.2), of
 *     the bytes before it with the header length as printed (0x009c).
 *     So key derivation, SASLprep and HMAC agree with the vector, and its
 *     only defect is the length field. It follows that the corrected
 *     message does NOT verify against the printed value (s14.6 hashes with
 *     the length pointing at the end of the attribute, 0x0088), and we
 *     assert exactly that (STUN_E_INTEGRITY) rather than a false pass;
 *  4. re-signing the corrected message with our builder reproduces every
 *     byte before the MI-SHA256 value, and the result verifies. */
static void test_rfc8489_b1(void)
{
	uint8_t buf[256], key[STUN_KEY_MAX], uh[32], mac[32], out[256];
	size_t len = unit_load_vector("rfc8489_b1.bin", buf, sizeof(buf));
	struct stun_builder b;
	struct stun_msg m, m2;
	int n;

	CU_ASSERT_EQUAL_FATAL(len, 156);
	CU_ASSERT(buf[2] == 0x00 && buf[3] == 0x9c);
	CU_ASSERT_EQUAL(stun_msg_parse(&m, buf, len), STUN_E_LENGTH);
	CU_ASSERT_EQUAL_FATAL(stun_key_long_term(STUN_PWALG_SHA256, MATRIX_USER, "example.org",
						 MATRIX_PASS, key), 32);
	/* 3: HMAC over the printed header, length 0x9c as printed. */
	CU_ASSERT_EQUAL(stun_hmac_msg(MBEDTLS_MD_SHA256, key, 32, buf, 120, 0x9c, mac), 0);
	CU_ASSERT(memcmp(mac, buf + 124, 32) == 0);

	buf[3] = 0x88; /* 2: the corrected length */
	CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m, buf, len), 0);
	CU_ASSERT_EQUAL(stun_userhash(MATRIX_USER, "example.org", uh), 0);
	CU_ASSERT(m.userhash.len == 32 && !memcmp(m.userhash.p, uh, 32));
	CU_ASSERT(m.nonce.len == 41 && !memcmp(m.nonce.p, "obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA", 41));
	CU_ASSERT(m.realm.len == 11 && !memcmp(m.realm.p, "example.org", 11));
	CU_ASSERT_EQUAL(m.mi256.len, 32);
	CU_ASSERT_EQUAL(stun_msg_verify_mi256(&m, key, 32), STUN_E_INTEGRITY);

	/* 4: re-sign; NONCE and REALM pad with zero bytes in the vector. */
	stun_build_init(&b, out, sizeof(out), m.method, m.cls, m.tid);
	stun_build_bytes(&b, STUN_ATTR_USERHASH, uh, 32);
	stun_build_bytes(&b, STUN_ATTR_NONCE, m.nonce.p, m.nonce.len);
	stun_build_bytes(&b, STUN_ATTR_REALM, m.realm.p, m.realm.len);
	stun_build_mi256(&b, key, 32);
	n = stun_build_finish(&b);
	CU_ASSERT_EQUAL_FATAL(n, 156);
	CU_ASSERT(memcmp(out, buf, 124) == 0);
	CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m2, out, (size_t)n), 0);
	CU_ASSERT_EQUAL(stun_msg_verify_mi256(&m2, key, 32), 0);
}

/* A minimal valid message to damage: Binding request, SOFTWARE, MI, FP. */
static int sample(uint8_t *buf, size_t cap)
{
	static const uint8_t tid[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
	struct stun_builder b;

	stun_build_init(&b, buf, cap, STUN_METHOD_BINDING, STUN_CLASS_REQUEST, tid);
	stun_build_str(&b, STUN_ATTR_SOFTWARE, "natkit");
	stun_build_str(&b, STUN_ATTR_USERNAME, "user");
	stun_build_mi(&b, short_key, SHORT_KEY_LEN);
	stun_build_fingerprint(&b);
	return stun_build_finish(&b);
}

static void test_truncated_everywhere(void)
{
	uint8_t buf[256];
	int n = sample(buf, sizeof(buf));
	struct stun_msg m;
	int i;

	CU_ASSERT_FATAL(n > 0);
	CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m, buf, (size_t)n), 0);
	for (i = 0; i < n; i++) {
		int want = i < STUN_HDR_LEN ? STUN_E_SHORT : STUN_E_LENGTH;

		CU_ASSERT_EQUAL(stun_msg_parse(&m, buf, (size_t)i), want);
	}
	/* Cut at every 4-byte offset with the header length made to agree:
	 * inside an attribute that is an overrun; at a boundary (after
	 * SOFTWARE, USERNAME, MESSAGE-INTEGRITY) it is a shorter valid message. */
	for (i = STUN_HDR_LEN + 4; i < n; i += 4) {
		int want = (i == 32 || i == 40 || i == 64) ? 0 : STUN_E_ATTR_OVERRUN;

		buf[2] = (uint8_t)((i - STUN_HDR_LEN) >> 8);
		buf[3] = (uint8_t)(i - STUN_HDR_LEN);
		CU_ASSERT_EQUAL(stun_msg_parse(&m, buf, (size_t)i), want);
	}
}

/* ---- the table of malformed messages ---- */

enum patch {
	P_NONE,
	P_LEN_ODD,       /* header length not a multiple of 4 */
	P_LEN_PLUS4,     /* header length beyond the datagram */
	P_LEN_MINUS4,    /* header length short of the datagram */
	P_TOP_BIT,       /* first byte 0x80 */
	P_COOKIE,        /* magic cookie damaged */
	P_ATTR_LEN_BIG,  /* first attribute's length runs past the end */
	P_FLIP_VALUE,    /* first attribute's first value byte flipped */
	P_FLIP_LAST,     /* last byte (FINGERPRINT value) flipped */
};

struct raw_attr {
	uint16_t type;
	uint16_t len;
	const char *val;   /* NULL for MI/MI256/FINGERPRINT: computed */
};

struct bad_case {
	const char *name;
	uint16_t method;
	uint8_t repeat;          /* how many times attrs[0] is written */
	struct raw_attr attrs[4];
	enum patch patch;
	int want;
};

#define Z "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
#define SW { STUN_ATTR_SOFTWARE, 6, "natkit" }
#define MI { STUN_ATTR_MESSAGE_INTEGRITY, 0, NULL }
#define MI256 { STUN_ATTR_MESSAGE_INTEGRITY_SHA256, 0, NULL }
#define FP { STUN_ATTR_FINGERPRINT, 0, NULL }
#define BIND STUN_METHOD_BINDING
#define ALLOC STUN_METHOD_ALLOCATE

static const struct bad_case bad_cases[] = {
	{ "length not a multiple of 4", BIND, 1, { SW }, P_LEN_ODD, STUN_E_LENGTH },
	{ "length beyond the datagram", BIND, 1, { SW }, P_LEN_PLUS4, STUN_E_LENGTH },
	{ "length short of the datagram", BIND, 1, { SW }, P_LEN_MINUS4, STUN_E_LENGTH },
	{ "top two bits set", BIND, 1, { SW }, P_TOP_BIT, STUN_E_NOT_STUN },
	{ "attribute overruns the message", BIND, 1, { SW, FP }, P_ATTR_LEN_BIG, STUN_E_ATTR_OVERRUN },
	{ "wrong cookie on Allocate", ALLOC, 1, { SW }, P_COOKIE, STUN_E_COOKIE },
	{ "wrong cookie with FINGERPRINT", BIND, 1, { SW, FP }, P_COOKIE, STUN_E_COOKIE },
	{ "bad FINGERPRINT (body changed)", BIND, 1, { SW, FP }, P_FLIP_VALUE, STUN_E_FINGERPRINT },
	{ "bad FINGERPRINT (value changed)", BIND, 1, { SW, FP }, P_FLIP_LAST, STUN_E_FINGERPRINT },
	{ "attribute after MESSAGE-INTEGRITY", BIND, 1, { MI, SW }, P_NONE, STUN_E_AFTER_INTEGRITY },
	{ "attribute after MI-SHA256", BIND, 1, { MI256, SW }, P_NONE, STUN_E_AFTER_INTEGRITY },
	{ "MESSAGE-INTEGRITY after MI-SHA256", BIND, 1, { MI256, MI }, P_NONE, STUN_E_AFTER_INTEGRITY },
	{ "attribute after FINGERPRINT", BIND, 1, { FP, SW }, P_NONE, STUN_E_AFTER_FINGERPRINT },
	{ "integrity after FINGERPRINT", BIND, 1, { FP, MI }, P_NONE, STUN_E_AFTER_FINGERPRINT },
	{ "two FINGERPRINTs", BIND, 1, { FP, FP }, P_NONE, STUN_E_DUPLICATE },
	{ "two MESSAGE-INTEGRITY", BIND, 1, { MI, MI }, P_NONE, STUN_E_DUPLICATE },
	{ "two MI-SHA256", BIND, 1, { MI, MI256, MI256 }, P_NONE, STUN_E_DUPLICATE },
	{ "MESSAGE-INTEGRITY of 16 bytes", BIND, 1, { { STUN_ATTR_MESSAGE_INTEGRITY, 16, Z } },
	  P_NONE, STUN_E_ATTR_LENGTH },
	{ "MI-SHA256 of 12 bytes", BIND, 1, { { STUN_ATTR_MESSAGE_INTEGRITY_SHA256, 12, Z } },
	  P_NONE, STUN_E_ATTR_LENGTH },
	{ "MI-SHA256 of 18 bytes", BIND, 1, { { STUN_ATTR_MESSAGE_INTEGRITY_SHA256, 18, Z } },
	  P_NONE, STUN_E_ATTR_LENGTH },
	{ "USERHASH of 28 bytes", BIND, 1, { { STUN_ATTR_USERHASH, 28, Z } }, P_NONE, STUN_E_ATTR_LENGTH },
	{ "FINGERPRINT of 8 bytes", BIND, 1, { { STUN_ATTR_FINGERPRINT, 8, Z } }, P_NONE, STUN_E_ATTR_LENGTH },
	{ "LIFETIME of 2 bytes", ALLOC, 1, { { STUN_ATTR_LIFETIME, 2, Z } }, P_NONE, STUN_E_ATTR_LENGTH },
	{ "EVEN-PORT of 4 bytes", ALLOC, 1, { { STUN_ATTR_EVEN_PORT, 4, Z } }, P_NONE, STUN_E_ATTR_LENGTH },
	{ "UNKNOWN-ATTRIBUTES of odd length", BIND, 1, { { STUN_ATTR_UNKNOWN_ATTRIBUTES, 3, Z } },
	  P_NONE, STUN_E_ATTR_LENGTH },
	{ "IPv4 address of 20 bytes", BIND, 1, { { STUN_ATTR_MAPPED_ADDRESS, 20, "\0\1" Z } },
	  P_NONE, STUN_E_ATTR_LENGTH },
	{ "IPv6 address of 8 bytes", BIND, 1, { { STUN_ATTR_XOR_MAPPED_ADDRESS, 8, "\0\2" Z } },
	  P_NONE, STUN_E_ATTR_LENGTH },
	{ "address family 3", BIND, 1, { { STUN_ATTR_XOR_MAPPED_ADDRESS, 8, "\0\3" Z } },
	  P_NONE, STUN_E_ATTR_VALUE },
	{ "ERROR-CODE class 7", BIND, 1, { { STUN_ATTR_ERROR_CODE, 4, "\0\0\7\0" } },
	  P_NONE, STUN_E_ATTR_VALUE },
	{ "ERROR-CODE number 100", BIND, 1, { { STUN_ATTR_ERROR_CODE, 4, "\0\0\4\144" } },
	  P_NONE, STUN_E_ATTR_VALUE },
	{ "PASSWORD-ALGORITHMS params overrun", BIND, 1,
	  { { STUN_ATTR_PASSWORD_ALGORITHMS, 8, "\0\1\0\10\0\0\0\0" } }, P_NONE, STUN_E_ATTR_VALUE },
	{ "nine XOR-PEER-ADDRESS", STUN_METHOD_CREATE_PERMISSION, 9,
	  { { STUN_ATTR_XOR_PEER_ADDRESS, 8, "\0\1" Z } }, P_NONE, STUN_E_TOO_MANY },
	{ "17 UNKNOWN-ATTRIBUTES entries", BIND, 1, { { STUN_ATTR_UNKNOWN_ATTRIBUTES, 34, Z Z } },
	  P_NONE, STUN_E_TOO_MANY },
};

static const uint8_t bad_tid[12] = { 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2 };

static void put_raw(struct stun_builder *b, const struct raw_attr *a)
{
	if (a->type == STUN_ATTR_MESSAGE_INTEGRITY && !a->val)
		stun_build_mi(b, short_key, SHORT_KEY_LEN);
	else if (a->type == STUN_ATTR_MESSAGE_INTEGRITY_SHA256 && !a->val)
		stun_build_mi256(b, short_key, SHORT_KEY_LEN);
	else if (a->type == STUN_ATTR_FINGERPRINT && !a->val)
		stun_build_fingerprint(b);
	else
		stun_build_bytes(b, a->type, a->val, a->len);
}

static void apply_patch(uint8_t *buf, size_t len, enum patch p)
{
	uint16_t l = (uint16_t)(buf[2] << 8 | buf[3]);

	switch (p) {
	case P_NONE: break;
	case P_LEN_ODD: l += 2; break;
	case P_LEN_PLUS4: l += 4; break;
	case P_LEN_MINUS4: l -= 4; break;
	case P_TOP_BIT: buf[0] |= 0x80; break;
	case P_COOKIE: buf[4] ^= 0x01; break;
	case P_ATTR_LEN_BIG: buf[22] = 0x01; break;
	case P_FLIP_VALUE: buf[24] ^= 0x20; break;
	case P_FLIP_LAST: buf[len - 1] ^= 0x01; break;
	}
	buf[2] = (uint8_t)(l >> 8);
	buf[3] = (uint8_t)l;
}

static int make_bad(const struct bad_case *c, uint8_t *buf, size_t cap)
{
	struct stun_builder b;
	size_t i;
	int n;

	stun_build_init(&b, buf, cap, c->method, STUN_CLASS_REQUEST, bad_tid);
	for (i = 1; i < c->repeat; i++)
		put_raw(&b, &c->attrs[0]);
	for (i = 0; i < 4 && c->attrs[i].type; i++)
		put_raw(&b, &c->attrs[i]);
	n = stun_build_finish(&b);
	if (n > 0)
		apply_patch(buf, (size_t)n, c->patch);
	return n;
}

static void test_malformed_table(void)
{
	uint8_t buf[1024];
	struct stun_msg m;
	size_t i;

	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		int n = make_bad(c, buf, sizeof(buf));
		int rc;

		CU_ASSERT_FATAL(n > 0);
		rc = stun_msg_parse(&m, buf, (size_t)n);
		if (rc != c->want)
			fprintf(stderr, "%s: got %d (%s), want %d (%s)\n", c->name, rc,
				stun_strerror(rc), c->want, stun_strerror(c->want));
		CU_ASSERT_EQUAL(rc, c->want);
	}
}

/* The unpatched messages of the order/duplicate rows differ only in the
 * one offending attribute: make sure the table is not vacuous by checking
 * that a clean MI + MI256 + FINGERPRINT message parses and verifies. */
static void test_integrity_order_ok(void)
{
	static const struct bad_case ok = { "ok", BIND, 1, { SW, MI, MI256, FP }, P_NONE, 0 };
	uint8_t buf[256];
	struct stun_msg m;
	int n = make_bad(&ok, buf, sizeof(buf));

	CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m, buf, (size_t)n), 0);
	CU_ASSERT_EQUAL(stun_msg_verify_mi(&m, short_key, SHORT_KEY_LEN), 0);
	CU_ASSERT_EQUAL(stun_msg_verify_mi256(&m, short_key, SHORT_KEY_LEN), 0);
}

/* Bad integrity is a verify-time reason: the structure is fine. */
static void test_bad_integrity(void)
{
	static const struct bad_case c = { "mi", BIND, 1, { SW, MI, MI256 }, P_FLIP_VALUE, 0 };
	uint8_t buf[256];
	struct stun_msg m;
	int n = make_bad(&c, buf, sizeof(buf));

	CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m, buf, (size_t)n), 0);
	CU_ASSERT_EQUAL(stun_msg_verify_mi(&m, short_key, SHORT_KEY_LEN), STUN_E_INTEGRITY);
	CU_ASSERT_EQUAL(stun_msg_verify_mi256(&m, short_key, SHORT_KEY_LEN), STUN_E_INTEGRITY);
	buf[24] ^= 0x20; /* undo: now only the key is wrong */
	CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m, buf, (size_t)n), 0);
	CU_ASSERT_EQUAL(stun_msg_verify_mi(&m, short_key, SHORT_KEY_LEN), 0);
	CU_ASSERT_EQUAL(stun_msg_verify_mi(&m, short_key, SHORT_KEY_LEN - 1), STUN_E_INTEGRITY);
	CU_ASSERT_EQUAL(stun_msg_verify_mi256(&m, short_key, SHORT_KEY_LEN - 1), STUN_E_INTEGRITY);
}

/* RFC 8489 s14.6: a MI-SHA256 truncated to 16..28 bytes (multiple of 4)
 * verifies against the leading bytes of the HMAC; a damaged one does not. */
static void test_mi256_truncated(void)
{
	uint8_t buf[256], mac[32], *p;
	struct stun_builder b;
	struct stun_msg m;
	size_t tl;

	for (tl = 16; tl <= 28; tl += 4) {
		int n;

		stun_build_init(&b, buf, sizeof(buf), BIND, STUN_CLASS_REQUEST, bad_tid);
		stun_build_str(&b, STUN_ATTR_SOFTWARE, "natkit");
		p = stun_build_reserve(&b, STUN_ATTR_MESSAGE_INTEGRITY_SHA256, tl);
		stun_build_fingerprint(&b);
		n = stun_build_finish(&b);
		CU_ASSERT_FATAL(n > 0 && p != NULL);
		CU_ASSERT_EQUAL(stun_hmac_msg(MBEDTLS_MD_SHA256, short_key, SHORT_KEY_LEN, buf,
					      (size_t)(p - 4 - buf), (size_t)(p + tl - buf) - 20, mac), 0);
		memcpy(p, mac, tl);
		/* the FINGERPRINT was computed before the MAC was filled in */
		CU_ASSERT_EQUAL(stun_msg_parse(&m, buf, (size_t)n), STUN_E_FINGERPRINT);
		n -= 8;
		buf[3] -= 8;
		CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m, buf, (size_t)n), 0);
		CU_ASSERT_EQUAL(m.mi256.len, tl);
		CU_ASSERT_EQUAL(stun_msg_verify_mi256(&m, short_key, SHORT_KEY_LEN), 0);
		p[tl - 1] ^= 1;
		CU_ASSERT_EQUAL(stun_msg_verify_mi256(&m, short_key, SHORT_KEY_LEN), STUN_E_INTEGRITY);
	}
}

/* RFC 3489: no magic cookie, 16-byte transaction ID, Binding only. */
static void test_classic(void)
{
	static const uint8_t tid16[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
	uint8_t buf[128];
	struct stun_builder b;
	struct stun_msg m;
	stun_sockaddr a, want;
	int n;

	CU_ASSERT_EQUAL(stun_sockaddr_parse(&want, "198.51.100.7:4000", 0), 0);
	stun_build_init_classic(&b, buf, sizeof(buf), BIND, STUN_CLASS_SUCCESS, tid16);
	stun_build_addr(&b, STUN_ATTR_MAPPED_ADDRESS, &want);
	n = stun_build_finish(&b);
	CU_ASSERT_EQUAL_FATAL(n, 32);
	CU_ASSERT(!memcmp(buf + 4, tid16, 16));
	CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m, buf, (size_t)n), 0);
	CU_ASSERT(m.classic);
	CU_ASSERT_EQUAL(m.cls, STUN_CLASS_SUCCESS);
	a = m.mapped;
	CU_ASSERT(stun_sockaddr_equal(&a, &want));
}

/* The unknown-attribute rule of RFC 8489 s6.3.1 / s14. */
static void test_unknown_required(void)
{
	uint8_t buf[128];
	struct stun_builder b;
	struct stun_msg m;
	int n;

	stun_build_init(&b, buf, sizeof(buf), BIND, STUN_CLASS_REQUEST, bad_tid);
	stun_build_u32(&b, 0x0030, 1);  /* comprehension-required, unknown */
	stun_build_u32(&b, 0x8030, 1);  /* comprehension-optional: ignored */
	stun_build_u32(&b, 0x7FFF, 1);
	n = stun_build_finish(&b);
	CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m, buf, (size_t)n), 0);
	CU_ASSERT_EQUAL_FATAL(m.n_unknown_required, 2);
	CU_ASSERT_EQUAL(m.unknown_required[0], 0x0030);
	CU_ASSERT_EQUAL(m.unknown_required[1], 0x7FFF);
	CU_ASSERT_FALSE(stun_msg_has(&m, 0x0030));
}

static void test_builder_errors(void)
{
	uint8_t buf[64];
	struct stun_builder b;
	stun_sockaddr bad;

	stun_build_init(&b, buf, 10, BIND, STUN_CLASS_REQUEST, bad_tid);
	CU_ASSERT_EQUAL(stun_build_finish(&b), STUN_E_NOSPACE);
	stun_build_init(&b, buf, 32, BIND, STUN_CLASS_REQUEST, bad_tid);
	stun_build_str(&b, STUN_ATTR_SOFTWARE, "fits");
	stun_build_str(&b, STUN_ATTR_SOFTWARE, "too long now");
	stun_build_str(&b, STUN_ATTR_SOFTWARE, "x"); /* sticky: no-op */
	CU_ASSERT_EQUAL(stun_build_finish(&b), STUN_E_NOSPACE);
	CU_ASSERT_EQUAL(b.len, 28u);
	stun_build_init(&b, buf, sizeof(buf), BIND, STUN_CLASS_ERROR, bad_tid);
	stun_build_error(&b, 200, NULL);
	CU_ASSERT_EQUAL(stun_build_finish(&b), STUN_E_ARG);
	memset(&bad, 0, sizeof(bad));
	stun_build_init(&b, buf, sizeof(buf), BIND, STUN_CLASS_SUCCESS, bad_tid);
	stun_build_xor_addr(&b, STUN_ATTR_XOR_MAPPED_ADDRESS, &bad);
	CU_ASSERT_EQUAL(stun_build_finish(&b), STUN_E_ARG);
	stun_build_init(&b, buf, sizeof(buf), 0x1000, STUN_CLASS_REQUEST, bad_tid);
	CU_ASSERT_EQUAL(stun_build_finish(&b), STUN_E_ARG);
}

/* Method/class bits of RFC 8489 s5 on every method the codec names. */
static void test_methods_and_names(void)
{
	static const uint16_t methods[] = { 0x001, 0x003, 0x004, 0x006, 0x007, 0x008,
					    0x009, 0x00A, 0x00B, 0x00C, 0x800, 0xFFF };
	uint8_t buf[32];
	struct stun_builder b;
	struct stun_msg m;
	size_t i;
	int e, cls;

	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		for (cls = 0; cls < 4; cls++) {
			stun_build_init(&b, buf, sizeof(buf), methods[i], (uint8_t)cls, bad_tid);
			CU_ASSERT_EQUAL_FATAL(stun_build_finish(&b), 20);
			CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m, buf, 20), 0);
			CU_ASSERT(m.method == methods[i] && m.cls == cls);
		}
	/* Binding success response is 0x0101, Allocate error 0x0113 (s5). */
	stun_build_init(&b, buf, sizeof(buf), STUN_METHOD_ALLOCATE, STUN_CLASS_ERROR, bad_tid);
	CU_ASSERT(buf[0] == 0x01 && buf[1] == 0x13);
	CU_ASSERT_STRING_EQUAL(stun_method_name(STUN_METHOD_CREATE_PERMISSION), "CreatePermission");
	CU_ASSERT_STRING_EQUAL(stun_attr_name(STUN_ATTR_XOR_MAPPED_ADDRESS), "XOR-MAPPED-ADDRESS");
	CU_ASSERT_STRING_EQUAL(stun_error_reason(STUN_ERR_ROLE_CONFLICT), "Role Conflict");
	CU_ASSERT_STRING_EQUAL(stun_error_reason(STUN_ERR_INSUFFICIENT_CAPACITY), "Insufficient Capacity");
	for (e = STUN_E_CHANNEL; e <= 0; e++)
		CU_ASSERT(strcmp(stun_strerror(e), "unknown error") != 0);
	CU_ASSERT_STRING_EQUAL(stun_strerror(-999), "unknown error");
}

static void test_demux_and_addrs(void)
{
	static const uint8_t stun[1] = { 0x01 }, chan[1] = { 0x40 }, dtls[1] = { 0x16 };
	stun_sockaddr a, b;
	char s[64];

	CU_ASSERT_EQUAL(stun_demux(stun, 1), STUN_DEMUX_STUN);
	CU_ASSERT_EQUAL(stun_demux(chan, 1), STUN_DEMUX_CHANNEL);
	CU_ASSERT_EQUAL(stun_demux(dtls, 1), STUN_DEMUX_OTHER);
	CU_ASSERT_EQUAL(stun_demux(stun, 0), STUN_DEMUX_OTHER);
	CU_ASSERT_EQUAL(stun_sockaddr_parse(&a, "[::1]:5", 0), 0);
	CU_ASSERT_STRING_EQUAL(stun_sockaddr_str(&a, s, sizeof(s)), "[::1]:5");
	CU_ASSERT_EQUAL(stun_sockaddr_len(&a), sizeof(struct sockaddr_in6));
	CU_ASSERT_EQUAL(stun_sockaddr_parse(&b, "1.2.3.4", 3478), 0);
	CU_ASSERT_STRING_EQUAL(stun_sockaddr_str(&b, s, sizeof(s)), "1.2.3.4:3478");
	CU_ASSERT_FALSE(stun_sockaddr_equal(&a, &b));
	CU_ASSERT_EQUAL(stun_sockaddr_parse(&b, "::1", 5), 0);
	CU_ASSERT(stun_sockaddr_equal(&a, &b));
	CU_ASSERT_EQUAL(stun_sockaddr_parse(&b, "1.2.3.4:70000", 0), STUN_E_ARG);
	CU_ASSERT_EQUAL(stun_sockaddr_parse(&b, "[::1", 0), STUN_E_ARG);
	CU_ASSERT_EQUAL(stun_sockaddr_parse(&b, "host.example:1", 0), STUN_E_ARG);
	CU_ASSERT_EQUAL(stun_sockaddr_parse(&b, "1.2.3.4:", 0), STUN_E_ARG);
}

static const struct unit_case cases[] = {
	{ "RFC 5769 2.1 request: parse, verify, re-encode", test_rfc5769_request },
	{ "RFC 5769 2.2 IPv4 response", test_rfc5769_ipv4_response },
	{ "RFC 5769 2.3 IPv6 response", test_rfc5769_ipv6_response },
	{ "RFC 5769 2.4 long-term request (SASLprep)", test_rfc5769_long_term },
	{ "RFC 8489 B.1 (errata: length counts the header)", test_rfc8489_b1 },
	{ "truncated at every offset", test_truncated_everywhere },
	{ "malformed messages, each with its reason", test_malformed_table },
	{ "MI + MI-SHA256 + FINGERPRINT in order is fine", test_integrity_order_ok },
	{ "bad integrity", test_bad_integrity },
	{ "MI-SHA256 truncation (RFC 8489 s14.6)", test_mi256_truncated },
	{ "classic RFC 3489 message", test_classic },
	{ "unknown comprehension-required attributes", test_unknown_required },
	{ "builder errors are sticky and named", test_builder_errors },
	{ "method/class bits, names, reasons", test_methods_and_names },
	{ "demux and address helpers", test_demux_and_addrs },
	{ NULL, NULL },
};

int main(void)
{
	return unit_run("stun_msg", cases);
}
