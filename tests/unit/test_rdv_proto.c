/* CUnit: proto/rdv_proto (rendezvous attributes, docs/PROTOCOL.md). */
#include "rdv_proto.h"
#include "stun_msg.h"
#include "unit_util.h"

#include <arpa/inet.h>
#include <string.h>

static const uint8_t tid[STUN_TID_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };

static void mkcand(struct rdv_candidate *c, uint8_t type, const char *ip, uint16_t port,
		   uint32_t prio, const char *found)
{
	memset(c, 0, sizeof(*c));
	c->type = type;
	c->transport = RDV_TRANSPORT_UDP;
	c->component = 1;
	c->priority = prio;
	CU_ASSERT_EQUAL_FATAL(stun_sockaddr_parse(&c->addr, ip, port), 0);
	strcpy(c->foundation, found);
}

static struct rdv_msg offer(void)
{
	struct rdv_msg r;

	memset(&r, 0, sizeof(r));
	mkcand(&r.cand[0], RDV_CAND_HOST, "192.168.1.7", 40000, 2130706431, "1");
	mkcand(&r.cand[1], RDV_CAND_SRFLX, "203.0.113.9", 61000, 1694498815, "2a");
	mkcand(&r.cand[2], RDV_CAND_RELAY, "[2001:db8::1]", 3479, 16777215, "r+/9");
	mkcand(&r.cand[3], RDV_CAND_PREDICTED, "203.0.113.9", 61002, 1000, "p");
	r.cand[3].transport = RDV_TRANSPORT_TCP;
	r.n_cand = 4;
	r.has_ufrag = r.has_pwd = r.has_tie_breaker = true;
	strcpy(r.ufrag, "abcd");
	strcpy(r.pwd, "0123456789abcdefghij+/");
	r.tie_breaker = 0x0102030405060708ull;
	return r;
}

static int build(uint8_t *buf, size_t cap, uint16_t method, uint8_t cls, const struct rdv_msg *r,
		 const char *id)
{
	struct stun_builder b;

	stun_build_init(&b, buf, cap, method, cls, tid);
	if (id)
		rdv_build_id(&b, id);
	rdv_build_session(&b, r);
	stun_build_fingerprint(&b);
	return stun_build_finish(&b);
}

static void test_roundtrip(void)
{
	struct rdv_msg in = offer(), out;
	struct stun_msg m;
	uint8_t buf[1024];
	int n = build(buf, sizeof(buf), RDV_METHOD_CONNECT, STUN_CLASS_REQUEST, &in, "alice-1");

	CU_ASSERT_FATAL(n > 0);
	/* a plain STUN parser accepts it and sees no unknown required type */
	CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m, buf, (size_t)n), 0);
	CU_ASSERT_EQUAL(m.method, RDV_METHOD_CONNECT);
	CU_ASSERT_EQUAL(m.cls, STUN_CLASS_REQUEST);
	CU_ASSERT_EQUAL(m.n_unknown_required, 0);
	CU_ASSERT_EQUAL_FATAL(rdv_msg_decode(&out, &m), 0);
	CU_ASSERT(out.has_id && !strcmp(out.id, "alice-1"));
	CU_ASSERT_EQUAL_FATAL(out.n_cand, 4);
	for (int i = 0; i < 4; i++) {
		CU_ASSERT_EQUAL(out.cand[i].type, in.cand[i].type);
		CU_ASSERT_EQUAL(out.cand[i].transport, in.cand[i].transport);
		CU_ASSERT_EQUAL(out.cand[i].component, 1);
		CU_ASSERT_EQUAL(out.cand[i].priority, in.cand[i].priority);
		CU_ASSERT(stun_sockaddr_equal(&out.cand[i].addr, &in.cand[i].addr));
		CU_ASSERT_STRING_EQUAL(out.cand[i].foundation, in.cand[i].foundation);
	}
	CU_ASSERT(out.has_ufrag && !strcmp(out.ufrag, "abcd"));
	CU_ASSERT(out.has_pwd && !strcmp(out.pwd, in.pwd));
	CU_ASSERT(out.has_tie_breaker && out.tie_breaker == in.tie_breaker);
	CU_ASSERT(!out.has_offer_id && !out.has_from);
}

/* The wire layout of docs/PROTOCOL.md s3.2, byte by byte. */
static void test_candidate_wire(void)
{
	struct rdv_candidate c;
	struct stun_builder b;
	uint8_t buf[128];
	static const uint8_t want[] = {
		0xC0, 0x02, 0x00, 0x11,       /* RDV-CANDIDATE, length 17 */
		0x02, 0x11, 0x01, 0x01,       /* srflx, UDP, IPv4, foundation 1 byte */
		0x6E, 0x7F, 0x00, 0xFF,       /* priority */
		0x21 ^ 0x13, 0x12 ^ 0x88,     /* port 5000 ^ 0x2112 */
		0x01, 0x00,                   /* component 1, reserved */
		192 ^ 0x21, 0 ^ 0x12, 2 ^ 0xA4, 1 ^ 0x42, /* 192.0.2.1 ^ cookie */
		'F', 0, 0, 0,                 /* foundation, padding */
	};

	mkcand(&c, RDV_CAND_SRFLX, "192.0.2.1", 5000, 0x6E7F00FF, "F");
	stun_build_init(&b, buf, sizeof(buf), RDV_METHOD_OFFER, STUN_CLASS_INDICATION, tid);
	rdv_build_candidate(&b, &c);
	CU_ASSERT_EQUAL_FATAL(stun_build_finish(&b), 20 + (int)sizeof(want));
	CU_ASSERT(!memcmp(buf + 20, want, sizeof(want)));
}

/* The same candidate bytes mean the same address in any transaction. */
static void test_candidate_tid_independent(void)
{
	struct rdv_msg in = offer(), a, b;
	struct stun_msg m;
	uint8_t b1[512], b2[512];
	struct stun_builder sb;
	int n1, n2;

	n1 = build(b1, sizeof(b1), RDV_METHOD_CONNECT, STUN_CLASS_REQUEST, &in, NULL);
	stun_build_init(&sb, b2, sizeof(b2), RDV_METHOD_OFFER, STUN_CLASS_INDICATION,
			(const uint8_t *)"zzzzzzzzzzzz");
	rdv_build_session(&sb, &in);
	n2 = stun_build_finish(&sb);
	CU_ASSERT_FATAL(n1 > 0 && n2 > 0);
	CU_ASSERT(!memcmp(b1 + 20, b2 + 20, (size_t)n2 - 20));
	CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m, b1, (size_t)n1), 0);
	CU_ASSERT_EQUAL_FATAL(rdv_msg_decode(&a, &m), 0);
	CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m, b2, (size_t)n2), 0);
	CU_ASSERT_EQUAL_FATAL(rdv_msg_decode(&b, &m), 0);
	CU_ASSERT(stun_sockaddr_equal(&a.cand[2].addr, &b.cand[2].addr));
}

static void test_offer_id_from(void)
{
	static const uint8_t oid[RDV_OFFER_ID_LEN] = { 9, 9, 9, 9, 1, 2, 3, 4, 5, 6, 7, 8 };
	struct stun_builder b;
	struct stun_msg m;
	struct rdv_msg r;
	uint8_t buf[256];
	int n;

	stun_build_init(&b, buf, sizeof(buf), RDV_METHOD_ANSWER, STUN_CLASS_REQUEST, tid);
	rdv_build_offer_id(&b, oid);
	rdv_build_from(&b, "bob", 3);
	rdv_build_offer_id(&b, tid); /* a second one does not count */
	n = stun_build_finish(&b);
	CU_ASSERT_FATAL(n > 0);
	CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m, buf, (size_t)n), 0);
	CU_ASSERT_EQUAL_FATAL(rdv_msg_decode(&r, &m), 0);
	CU_ASSERT(r.has_offer_id && !memcmp(r.offer_id, oid, sizeof(oid)));
	CU_ASSERT(r.has_from && !strcmp(r.from, "bob"));
	CU_ASSERT(!r.has_id && r.n_cand == 0);
}

/* Attributes after MESSAGE-INTEGRITY are not ours to read (RFC 8489 s14.5). */
static void test_after_integrity_ignored(void)
{
	static const uint8_t key[16] = { 1 };
	struct stun_builder b;
	struct stun_msg m;
	struct rdv_msg r;
	uint8_t buf[256];
	int n;

	stun_build_init(&b, buf, sizeof(buf), RDV_METHOD_REGISTER, STUN_CLASS_REQUEST, tid);
	rdv_build_id(&b, "first");
	stun_build_mi(&b, key, sizeof(key));
	n = stun_build_finish(&b);
	CU_ASSERT_FATAL(n > 0);
	CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m, buf, (size_t)n), 0);
	CU_ASSERT_EQUAL(stun_msg_verify_mi(&m, key, sizeof(key)), 0);
	CU_ASSERT_EQUAL_FATAL(rdv_msg_decode(&r, &m), 0);
	CU_ASSERT_STRING_EQUAL(r.id, "first");
}

struct bad_case {
	uint16_t type;
	const uint8_t *v;
	uint16_t len;
	int want;
};

static void test_malformed(void)
{
	static const uint8_t space_id[] = "a b", long_id[65] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	static const uint8_t short_ufrag[] = "abc", bad_pwd[] = "0123456789abcdefghij-!";
	static const uint8_t cand_fam[] = { 1, 17, 3, 1, 0, 0, 0, 1, 0, 0, 1, 0, 1, 2, 3, 4, 'x' };
	static const uint8_t cand_type[] = { 9, 17, 1, 1, 0, 0, 0, 1, 0, 0, 1, 0, 1, 2, 3, 4, 'x' };
	static const uint8_t cand_tp[] = { 1, 99, 1, 1, 0, 0, 0, 1, 0, 0, 1, 0, 1, 2, 3, 4, 'x' };
	static const uint8_t cand_short[] = { 1, 17, 1, 1, 0, 0, 0, 1, 0, 0, 1, 0, 1, 2, 3 };
	static const uint8_t cand_long[] = { 1, 17, 1, 1, 0, 0, 0, 1, 0, 0, 1, 0, 1, 2, 3, 4, 'x', 'y' };
	static const uint8_t cand_nof[] = { 1, 17, 1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 2, 3, 4 };
	static const uint8_t cand_badf[] = { 1, 17, 1, 1, 0, 0, 0, 1, 0, 0, 1, 0, 1, 2, 3, 4, '-' };
	static const uint8_t tb7[7] = { 0 }, oid11[11] = { 0 };
	const struct bad_case cases[] = {
		{ RDV_ATTR_ID, space_id, 3, STUN_E_ATTR_VALUE },
		{ RDV_ATTR_ID, long_id, 65, STUN_E_ATTR_LENGTH },
		{ RDV_ATTR_ID, long_id, 0, STUN_E_ATTR_LENGTH },
		{ RDV_ATTR_ICE_UFRAG, short_ufrag, 3, STUN_E_ATTR_LENGTH },
		{ RDV_ATTR_ICE_PWD, bad_pwd, 22, STUN_E_ATTR_VALUE },
		{ RDV_ATTR_CANDIDATE, cand_fam, sizeof(cand_fam), STUN_E_ATTR_VALUE },
		{ RDV_ATTR_CANDIDATE, cand_type, sizeof(cand_type), STUN_E_ATTR_VALUE },
		{ RDV_ATTR_CANDIDATE, cand_tp, sizeof(cand_tp), STUN_E_ATTR_VALUE },
		{ RDV_ATTR_CANDIDATE, cand_short, sizeof(cand_short), STUN_E_ATTR_LENGTH },
		{ RDV_ATTR_CANDIDATE, cand_long, sizeof(cand_long), STUN_E_ATTR_LENGTH },
		{ RDV_ATTR_CANDIDATE, cand_nof, sizeof(cand_nof), STUN_E_ATTR_VALUE },
		{ RDV_ATTR_CANDIDATE, cand_badf, sizeof(cand_badf), STUN_E_ATTR_VALUE },
		{ RDV_ATTR_CANDIDATE, cand_fam, 5, STUN_E_ATTR_LENGTH },
		{ RDV_ATTR_TIE_BREAKER, tb7, 7, STUN_E_ATTR_LENGTH },
		{ RDV_ATTR_OFFER_ID, oid11, 11, STUN_E_ATTR_LENGTH },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct stun_builder b;
		struct stun_msg m;
		struct rdv_msg r;
		uint8_t buf[256];
		int n;

		stun_build_init(&b, buf, sizeof(buf), RDV_METHOD_CONNECT, STUN_CLASS_REQUEST, tid);
		stun_build_bytes(&b, cases[i].type, cases[i].v, cases[i].len);
		n = stun_build_finish(&b);
		CU_ASSERT_FATAL(n > 0);
		CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m, buf, (size_t)n), 0);
		if (rdv_msg_decode(&r, &m) != cases[i].want)
			fprintf(stderr, "case %zu: got %d\n", i, rdv_msg_decode(&r, &m));
		CU_ASSERT_EQUAL(rdv_msg_decode(&r, &m), cases[i].want);
	}
}

static void test_too_many_candidates(void)
{
	struct rdv_msg in = offer(), out;
	struct stun_builder b;
	struct stun_msg m;
	uint8_t buf[2048];
	int n;

	stun_build_init(&b, buf, sizeof(buf), RDV_METHOD_CONNECT, STUN_CLASS_REQUEST, tid);
	for (int i = 0; i <= RDV_MAX_CANDIDATES; i++)
		rdv_build_candidate(&b, &in.cand[0]);
	n = stun_build_finish(&b);
	CU_ASSERT_FATAL(n > 0);
	CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m, buf, (size_t)n), 0);
	CU_ASSERT_EQUAL(rdv_msg_decode(&out, &m), STUN_E_TOO_MANY);
}

static void test_builder_rejects(void)
{
	struct rdv_msg in = offer();
	struct stun_builder b;
	uint8_t buf[256];

	stun_build_init(&b, buf, sizeof(buf), RDV_METHOD_REGISTER, STUN_CLASS_REQUEST, tid);
	rdv_build_id(&b, "bad id");
	CU_ASSERT_EQUAL(stun_build_finish(&b), STUN_E_ARG);

	in.cand[0].foundation[0] = '\0';
	stun_build_init(&b, buf, sizeof(buf), RDV_METHOD_CONNECT, STUN_CLASS_REQUEST, tid);
	rdv_build_candidate(&b, &in.cand[0]);
	CU_ASSERT_EQUAL(stun_build_finish(&b), STUN_E_ARG);

	in = offer();
	stun_build_init(&b, buf, 40, RDV_METHOD_CONNECT, STUN_CLASS_REQUEST, tid);
	rdv_build_session(&b, &in);
	CU_ASSERT_EQUAL(stun_build_finish(&b), STUN_E_NOSPACE);
}

/* Every rendezvous message starts with a byte RFC 7983 demultiplexing
 * calls STUN (the reason the methods are 0x0C0-0x0C4, not 0x800+). */
static void test_demux(void)
{
	static const uint16_t methods[] = { RDV_METHOD_REGISTER, RDV_METHOD_REFRESH,
		RDV_METHOD_CONNECT, RDV_METHOD_OFFER, RDV_METHOD_ANSWER };
	struct stun_builder b;
	struct stun_msg m;
	uint8_t buf[64];
	int n;

	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		for (uint8_t cls = 0; cls < 4; cls++) {
			stun_build_init(&b, buf, sizeof(buf), methods[i], cls, tid);
			n = stun_build_finish(&b);
			CU_ASSERT_FATAL(n == 20);
			CU_ASSERT_EQUAL(stun_demux(buf, (size_t)n), STUN_DEMUX_STUN);
			CU_ASSERT_EQUAL_FATAL(stun_msg_parse(&m, buf, (size_t)n), 0);
			CU_ASSERT_EQUAL(m.method, methods[i]);
			CU_ASSERT_EQUAL(m.cls, cls);
		}
	}
}

static void test_names(void)
{
	CU_ASSERT_STRING_EQUAL(rdv_error_reason(RDV_ERR_UNKNOWN_PEER), "Unknown Peer");
	CU_ASSERT_STRING_EQUAL(rdv_error_reason(RDV_ERR_PEER_TIMEOUT), "Peer Did Not Answer");
	CU_ASSERT_STRING_EQUAL(rdv_error_reason(RDV_ERR_ID_TAKEN), "ID Taken");
	CU_ASSERT_STRING_EQUAL(rdv_error_reason(401), stun_error_reason(401));
	CU_ASSERT_STRING_EQUAL(rdv_method_name(RDV_METHOD_REGISTER), "Register");
	CU_ASSERT_PTR_NULL(rdv_method_name(STUN_METHOD_BINDING));
	for (uint8_t t = RDV_CAND_HOST; t <= RDV_CAND_PREDICTED; t++)
		CU_ASSERT_EQUAL(rdv_cand_type_parse(rdv_cand_type_name(t)), t);
	CU_ASSERT_EQUAL(rdv_cand_type_parse("bogus"), 0);
	CU_ASSERT_PTR_NULL(rdv_cand_type_name(0));
	CU_ASSERT_PTR_NULL(rdv_cand_type_name(6));
	CU_ASSERT(rdv_id_valid("user@host:1.a_b-c", 17));
	CU_ASSERT(!rdv_id_valid("", 0));
	CU_ASSERT(!rdv_id_valid("a/b", 3));
}

int main(void)
{
	static const struct unit_case cases[] = {
		{ "round trip of an offer", test_roundtrip },
		{ "candidate wire layout", test_candidate_wire },
		{ "candidate bytes independent of the tid", test_candidate_tid_independent },
		{ "offer id and from-user", test_offer_id_from },
		{ "after MESSAGE-INTEGRITY ignored", test_after_integrity_ignored },
		{ "malformed values", test_malformed },
		{ "too many candidates", test_too_many_candidates },
		{ "builder rejects bad input", test_builder_rejects },
		{ "RFC 7983 demux sees STUN", test_demux },
		{ "names", test_names },
		{ NULL, NULL },
	};

	return unit_run("rdv_proto", cases);
}
