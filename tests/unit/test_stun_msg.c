/* CUnit: the STUN codec (proto/stun_msg, stun_attr, stun_build) against the
 * RFC 5769 vectors, RFC 8489 appendix B.1, per-attribute round trips and a
 * table of malformed messages. */
#include "stun_msg.h"
#include "stun_attr.h"
#include "stun_auth.h"
#include "unit_util.h"

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
}

static const struct unit_case cases[] = {
	{ "RFC 5769 2.1 request: parse, verify, re-encode", test_rfc5769_request },
	{ "RFC 5769 2.2 IPv4 response", test_rfc5769_ipv4_response },
	{ "RFC 5769 2.3 IPv6 response", test_rfc5769_ipv6_response },
	{ "truncated at every offset", test_truncated_everywhere },
	{ NULL, NULL },
};

int main(void)
{
	return unit_run("stun_msg", cases);
}
