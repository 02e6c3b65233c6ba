/* CUnit: a round trip for every attribute in proto's table. One message
 * carries them all (built with the public builder), is parsed, each typed
 * field is checked, and it is re-encoded from the struct byte-exact; then
 * every table row is round-tripped alone. A table row without a value here
 * fails the "every row present" check. */
#include "stun_msg.h"
#include "stun_attr.h"
#include "unit_util.h"

#include <arpa/inet.h>
#include <string.h>

static const uint8_t tid[12] = { 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
				 0xfa, 0x87, 0xdf, 0xae };
static const uint8_t key[] = "round-trip-key";

static stun_sockaddr addr(const char *s)
{
	stun_sockaddr a;

	CU_ASSERT_EQUAL(stun_sockaddr_parse(&a, s, 3478), 0);
	return a;
}

static void put_addrs(struct stun_builder *b)
{
	stun_sockaddr v4 = addr("192.0.2.1:32853"), v6 = addr("[2001:db8::1]:40000");

	stun_build_addr(b, STUN_ATTR_MAPPED_ADDRESS, &v4);
	stun_build_xor_addr(b, STUN_ATTR_XOR_MAPPED_ADDRESS, &v6);
	stun_build_xor_addr(b, STUN_ATTR_XOR_PEER_ADDRESS, &v4);
	stun_build_xor_addr(b, STUN_ATTR_XOR_PEER_ADDRESS, &v6);
	stun_build_xor_addr(b, STUN_ATTR_XOR_RELAYED_ADDRESS, &v4);
	stun_build_xor_addr(b, STUN_ATTR_XOR_RELAYED_ADDRESS, &v6);
	stun_build_addr(b, STUN_ATTR_ALTERNATE_SERVER, &v6);
	stun_build_addr(b, STUN_ATTR_RESPONSE_ORIGIN, &v4);
	stun_build_addr(b, STUN_ATTR_OTHER_ADDRESS, &v4);
}

static void put_text(struct stun_builder *b)
{
	static const uint16_t unk[] = { 0x0031, 0x0032, 0x7000 };
	static const uint16_t algs[] = { STUN_PWALG_MD5, STUN_PWALG_SHA256 };
	uint8_t uh[32], *p;

	memset(uh, 0xab, sizeof(uh));
	stun_build_str(b, STUN_ATTR_USERNAME, "alice");
	stun_build_str(b, STUN_ATTR_REALM, "example.org");
	stun_build_str(b, STUN_ATTR_NONCE, "obMatJos2AAAAnonce");
	stun_build_str(b, STUN_ATTR_SOFTWARE, "natkit test");
	stun_build_str(b, STUN_ATTR_ALTERNATE_DOMAIN, "alt.example.org");
	stun_build_bytes(b, STUN_ATTR_DATA, "hello", 5);
	stun_build_bytes(b, STUN_ATTR_PADDING, "1234567", 7);
	stun_build_bytes(b, STUN_ATTR_USERHASH, uh, 32);
	stun_build_error(b, STUN_ERR_STALE_NONCE, NULL);
	stun_build_address_error(b, STUN_FAMILY_IPV6, STUN_ERR_ADDRESS_FAMILY, NULL);
	stun_build_unknown(b, unk, 3);
	stun_build_pw_algs(b, algs, 2);
	p = stun_build_reserve(b, STUN_ATTR_PASSWORD_ALGORITHM, 7);
	if (p)
		memcpy(p, "\x00\x02\x00\x03xyz", 7); /* params padded by the attribute */
	p = stun_build_reserve(b, STUN_ATTR_ICMP, 8);
	if (p)
		memcpy(p, "\x00\x00\x03\x04\x00\x00\x05\xdc", 8);
}

static void put_numbers(struct stun_builder *b)
{
	uint8_t even = 0x80;

	stun_build_u32(b, STUN_ATTR_CHANGE_REQUEST, STUN_CHANGE_IP | STUN_CHANGE_PORT);
	stun_build_u16(b, STUN_ATTR_CHANNEL_NUMBER, 0x4001);
	stun_build_u32(b, STUN_ATTR_LIFETIME, 600);
	stun_build_u8(b, STUN_ATTR_REQUESTED_ADDRESS_FAMILY, STUN_FAMILY_IPV4);
	stun_build_bytes(b, STUN_ATTR_EVEN_PORT, &even, 1);
	stun_build_u8(b, STUN_ATTR_REQUESTED_TRANSPORT, 17);
	stun_build_empty(b, STUN_ATTR_DONT_FRAGMENT);
	stun_build_u64(b, STUN_ATTR_RESERVATION_TOKEN, 0x0102030405060708ull);
	stun_build_u32(b, STUN_ATTR_PRIORITY, 0x6e0001ff);
	stun_build_empty(b, STUN_ATTR_USE_CANDIDATE);
	stun_build_u16(b, STUN_ATTR_RESPONSE_PORT, 3479);
	stun_build_u32(b, STUN_ATTR_CONNECTION_ID, 0xdeadbeef);
	stun_build_u8(b, STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY, STUN_FAMILY_IPV6);
	stun_build_u64(b, STUN_ATTR_ICE_CONTROLLED, 0x932ff9b151263b36ull);
	stun_build_u64(b, STUN_ATTR_ICE_CONTROLLING, 0x1122334455667788ull);
}

static int build_all(uint8_t *buf, size_t cap)
{
	struct stun_builder b;

	stun_build_init(&b, buf, cap, STUN_METHOD_ALLOCATE, STUN_CLASS_SUCCESS, tid);
	put_addrs(&b);
	put_text(&b);
	put_numbers(&b);
	stun_build_mi(&b, key, sizeof(key) - 1);
	stun_build_mi256(&b, key, sizeof(key) - 1);
	stun_build_fingerprint(&b);
	return stun_build_finish(&b);
}

static bool bytes_eq(struct stun_bytes v, const char *s)
{
	return v.len == strlen(s) && !memcmp(v.p, s, v.len);
}

static void check_addrs(const struct stun_msg *m)
{
	stun_sockaddr v4 = addr("192.0.2.1:32853"), v6 = addr("[2001:db8::1]:40000");

	CU_ASSERT(stun_sockaddr_equal(&m->mapped, &v4));
	CU_ASSERT(stun_sockaddr_equal(&m->xor_mapped, &v6));
	CU_ASSERT_EQUAL_FATAL(m->n_xor_peer, 2);
	CU_ASSERT(stun_sockaddr_equal(&m->xor_peer[0], &v4));
	CU_ASSERT(stun_sockaddr_equal(&m->xor_peer[1], &v6));
	CU_ASSERT_EQUAL_FATAL(m->n_xor_relayed, 2);
	CU_ASSERT(stun_sockaddr_equal(&m->xor_relayed[0], &v4));
	CU_ASSERT(stun_sockaddr_equal(&m->xor_relayed[1], &v6));
	CU_ASSERT(stun_sockaddr_equal(&m->alternate_server, &v6));
	CU_ASSERT(stun_sockaddr_equal(&m->response_origin, &v4));
	CU_ASSERT(stun_sockaddr_equal(&m->other_address, &v4));
}

static void check_text(const struct stun_msg *m)
{
	CU_ASSERT(bytes_eq(m->username, "alice"));
	CU_ASSERT(bytes_eq(m->realm, "example.org"));
	CU_ASSERT(bytes_eq(m->nonce, "obMatJos2AAAAnonce"));
	CU_ASSERT(bytes_eq(m->software, "natkit test"));
	CU_ASSERT(bytes_eq(m->alternate_domain, "alt.example.org"));
	CU_ASSERT(bytes_eq(m->data, "hello"));
	CU_ASSERT(bytes_eq(m->padding, "1234567"));
	CU_ASSERT(m->userhash.len == 32 && m->userhash.p[31] == 0xab);
	CU_ASSERT_EQUAL(m->error.code, 438);
	CU_ASSERT(bytes_eq(m->error.reason, "Stale Nonce"));
	CU_ASSERT_EQUAL(m->address_error.family, STUN_FAMILY_IPV6);
	CU_ASSERT_EQUAL(m->address_error.code, 440);
	CU_ASSERT(bytes_eq(m->address_error.reason, "Address Family not Supported"));
	CU_ASSERT(m->n_unknown_attrs == 3 && m->unknown_attrs[2] == 0x7000);
	CU_ASSERT(m->n_pw_algs == 2 && m->pw_algs[1].alg == STUN_PWALG_SHA256);
	CU_ASSERT(m->pw_alg.alg == STUN_PWALG_SHA256 && m->pw_alg.params.len == 3);
	CU_ASSERT(m->icmp_type == 3 && m->icmp_code == 4 && m->icmp_data == 1500);
}

static void check_numbers(const struct stun_msg *m)
{
	CU_ASSERT_EQUAL(m->change_request, STUN_CHANGE_IP | STUN_CHANGE_PORT);
	CU_ASSERT_EQUAL(m->channel_number, 0x4001);
	CU_ASSERT_EQUAL(m->lifetime, 600);
	CU_ASSERT_EQUAL(m->requested_family, STUN_FAMILY_IPV4);
	CU_ASSERT(m->even_port_reserve);
	CU_ASSERT_EQUAL(m->requested_transport, 17);
	CU_ASSERT_EQUAL(m->reservation_token, 0x0102030405060708ull);
	CU_ASSERT_EQUAL(m->priority, 0x6e0001ffu);
	CU_ASSERT_EQUAL(m->response_port, 3479);
	CU_ASSERT_EQUAL(m->connection_id, 0xdeadbeefu);
	CU_ASSERT_EQUAL(m->additional_family, STUN_FAMILY_IPV6);
	CU_ASSERT_EQUAL(m->ice_controlled, 0x932ff9b151263b36ull);
	CU_ASSERT_EQUAL(m->ice_controlling, 0x1122334455667788ull);
}

static void test_all_in_one(void)
{
	uint8_t buf[2048];
	struct stun_msg m;
	int n = build_all(buf, sizeof(buf));
	size_t i;

	CU_ASSERT_FATAL(n > 0);
	CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m, buf, (size_t)n), 0);
	CU_ASSERT_EQUAL(m.method, STUN_METHOD_ALLOCATE);
	CU_ASSERT_EQUAL(m.cls, STUN_CLASS_SUCCESS);
	CU_ASSERT_EQUAL(m.n_unknown_required, 0);
	for (i = 0; i < stun_attr_count(); i++) {
		const struct stun_attr_def *d = stun_attr_at(i);

		if (!stun_msg_has(&m, d->type))
			fprintf(stderr, "missing from the round trip: %s\n", d->name);
		CU_ASSERT(stun_msg_has(&m, d->type));
		CU_ASSERT_STRING_EQUAL(stun_attr_name(d->type), d->name);
	}
	check_addrs(&m);
	check_text(&m);
	check_numbers(&m);
	CU_ASSERT_EQUAL(stun_msg_verify_mi(&m, key, sizeof(key) - 1), 0);
	CU_ASSERT_EQUAL(stun_msg_verify_mi256(&m, key, sizeof(key) - 1), 0);
}

/* Is the attribute at off the first of its type? (Lists re-encode all
 * their entries at the first occurrence.) */
static bool first_of_type(const struct stun_msg *m, size_t off, uint16_t t)
{
	size_t o = STUN_HDR_LEN;

	while (o < off) {
		uint16_t t2 = (uint16_t)(m->raw[o] << 8 | m->raw[o + 1]);
		uint16_t l2 = (uint16_t)(m->raw[o + 2] << 8 | m->raw[o + 3]);

		if (t2 == t)
			return false;
		o += 4 + ((l2 + 3u) & ~3u);
	}
	return true;
}

/* Re-encode m from its struct in the order of the raw attributes. */
static int reencode(const struct stun_msg *m, uint8_t *out, size_t cap)
{
	struct stun_builder b;
	size_t off = STUN_HDR_LEN;

	stun_build_init(&b, out, cap, m->method, m->cls, m->tid);
	while (off < m->raw_len) {
		uint16_t t = (uint16_t)(m->raw[off] << 8 | m->raw[off + 1]);
		uint16_t l = (uint16_t)(m->raw[off + 2] << 8 | m->raw[off + 3]);

		if (t == STUN_ATTR_MESSAGE_INTEGRITY)
			stun_build_mi(&b, key, sizeof(key) - 1);
		else if (t == STUN_ATTR_MESSAGE_INTEGRITY_SHA256)
			stun_build_mi256(&b, key, sizeof(key) - 1);
		else if (t == STUN_ATTR_FINGERPRINT)
			stun_build_fingerprint(&b);
		else if (first_of_type(m, off, t))
			stun_attr_encode(&b, m, t);
		off += 4 + ((l + 3u) & ~3u);
	}
	return stun_build_finish(&b);
}

static void test_reencode_byte_exact(void)
{
	uint8_t buf[2048], out[2048];
	struct stun_msg m;
	int n = build_all(buf, sizeof(buf));

	CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m, buf, (size_t)n), 0);
	CU_ASSERT_EQUAL_FATAL(reencode(&m, out, sizeof(out)), n);
	CU_ASSERT(memcmp(buf, out, (size_t)n) == 0);
}

/* Each row alone: encode from the full message, parse, encode again. */
static void test_each_attribute_alone(void)
{
	uint8_t buf[2048], one[1024], two[1024];
	struct stun_msg all, m;
	struct stun_builder b;
	size_t i;
	int n1, n2;

	n1 = build_all(buf, sizeof(buf));
	CU_ASSERT_FATAL(n1 > 0);
	CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&all, buf, (size_t)n1), 0);
	for (i = 0; i < stun_attr_count(); i++) {
		uint16_t t = stun_attr_at(i)->type;

		if (t == STUN_ATTR_MESSAGE_INTEGRITY || t == STUN_ATTR_MESSAGE_INTEGRITY_SHA256 ||
		    t == STUN_ATTR_FINGERPRINT)
			continue; /* computed, covered above */
		stun_build_init(&b, one, sizeof(one), STUN_METHOD_BINDING, STUN_CLASS_REQUEST, tid);
		stun_attr_encode(&b, &all, t);
		n1 = stun_build_finish(&b);
		CU_ASSERT_FATAL(n1 > STUN_HDR_LEN);
		CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m, one, (size_t)n1), 0);
		CU_ASSERT(stun_msg_has(&m, t));
		stun_build_init(&b, two, sizeof(two), STUN_METHOD_BINDING, STUN_CLASS_REQUEST, tid);
		stun_attr_encode(&b, &m, t);
		n2 = stun_build_finish(&b);
		CU_ASSERT(n1 == n2 && !memcmp(one, two, (size_t)n1));
	}
}

static const struct unit_case cases[] = {
	{ "every attribute in one message, typed fields", test_all_in_one },
	{ "re-encode from the struct byte-exact", test_reencode_byte_exact },
	{ "each attribute alone round-trips", test_each_attribute_alone },
	{ NULL, NULL },
};

int main(void)
{
	return unit_run("stun_attr", cases);
}
