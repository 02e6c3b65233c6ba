/* rdv_proto: rendezvous attributes over STUN (docs/PROTOCOL.md). */
#include "rdv_proto.h"
#include "stun_rd.h"

#include <string.h>

/* ---- names ---- */

const char *rdv_error_reason(uint16_t code)
{
	switch (code) {
	case RDV_ERR_UNKNOWN_PEER: return "Unknown Peer";
	case RDV_ERR_PEER_TIMEOUT: return "Peer Did Not Answer";
	case RDV_ERR_ID_TAKEN: return "ID Taken";
	case RDV_ERR_DECLINED: return "Peer Declined";
	case RDV_ERR_QUOTA: return "Registration Quota Reached";
	case RDV_ERR_FULL: return "Registry Full";
	}
	return stun_error_reason(code);
}

const char *rdv_method_name(uint16_t method)
{
	switch (method) {
	case RDV_METHOD_REGISTER: return "Register";
	case RDV_METHOD_REFRESH: return "RdvRefresh";
	case RDV_METHOD_CONNECT: return "RdvConnect";
	case RDV_METHOD_OFFER: return "Offer";
	case RDV_METHOD_ANSWER: return "Answer";
	}
	return NULL;
}

static const char *const cand_names[] = {
	[RDV_CAND_HOST] = "host",
	[RDV_CAND_SRFLX] = "srflx",
	[RDV_CAND_PRFLX] = "prflx",
	[RDV_CAND_RELAY] = "relay",
	[RDV_CAND_PREDICTED] = "predicted",
};
#define N_CAND_NAMES (sizeof(cand_names) / sizeof(cand_names[0]))

const char *rdv_cand_type_name(uint8_t type)
{
	return type < N_CAND_NAMES ? cand_names[type] : NULL;
}

uint8_t rdv_cand_type_parse(const char *name)
{
	for (uint8_t t = 1; t < N_CAND_NAMES; t++)
		if (name && !strcmp(name, cand_names[t]))
			return t;
	return 0;
}

/* ---- character classes ---- */

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool rdv_id_valid(const char *s, size_t len)
{
	if (!s || len < 1 || len > RDV_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_alnum(s[i]) && !strchr("._@:-", s[i]))
			return false;
	return true;
}

bool rdv_ice_chars(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!is_alnum(s[i]) && s[i] != '+' && s[i] != '/')
			return false;
	return true;
}

/* ---- decoding ---- */

/* Copy a string value of min..max bytes; checked by ok(). */
static int get_str(char *dst, const uint8_t *v, uint16_t len, size_t min, size_t max,
		   bool (*ok)(const char *, size_t))
{
	if (len < min || len > max)
		return STUN_E_ATTR_LENGTH;
	if (memchr(v, 0, len))
		return STUN_E_ATTR_VALUE;
	if (ok && !ok((const char *)v, len))
		return STUN_E_ATTR_VALUE;
	memcpy(dst, v, len);
	dst[len] = '\0';
	return 0;
}

/* Addresses in a candidate are XOR'ed with the magic cookie only (repeated
 * over an IPv6 address), so the server can copy a candidate from one
 * transaction to another unchanged (docs/PROTOCOL.md s3.2). */
static void xor_cookie(uint8_t *a, size_t n)
{
	static const uint8_t k[4] = { 0x21, 0x12, 0xA4, 0x42 };

	for (size_t i = 0; i < n; i++)
		a[i] ^= k[i % 4];
}

static int cand_addr(struct stun_rd *r, uint8_t family, stun_sockaddr *out)
{
	uint16_t port = stun_rd_u16(r) ^ (uint16_t)(STUN_MAGIC_COOKIE >> 16);
	size_t alen = family == STUN_FAMILY_IPV4 ? 4 : 16;
	const uint8_t *p;
	uint8_t a[16];

	stun_rd_take(r, 2); /* component (the caller keeps it) and reserved */
	p = stun_rd_take(r, alen);
	if (!p)
		return STUN_E_ATTR_LENGTH;
	memcpy(a, p, alen);
	xor_cookie(a, alen);
	memset(out, 0, sizeof(*out));
	if (family == STUN_FAMILY_IPV4) {
		out->in4.sin_family = AF_INET;
		out->in4.sin_port = htons(port);
		memcpy(&out->in4.sin_addr, a, 4);
	} else {
		out->in6.sin6_family = AF_INET6;
		out->in6.sin6_port = htons(port);
		memcpy(&out->in6.sin6_addr, a, 16);
	}
	return 0;
}

/* Layout: type, transport, family, foundation length (1 byte each),
 * priority (4), port (2), component (1), reserved (1), address (4/16),
 * foundation (1..32 ice-char). */
static int get_cand(struct rdv_candidate *c, const uint8_t *v, uint16_t len)
{
	struct stun_rd r;
	uint8_t family, flen;
	const uint8_t *f;
	int rc;

	stun_rd_init(&r, v, len);
	c->type = stun_rd_u8(&r);
	c->transport = stun_rd_u8(&r);
	family = stun_rd_u8(&r);
	flen = stun_rd_u8(&r);
	c->priority = stun_rd_u32(&r);
	if (r.err || len < 12)
		return STUN_E_ATTR_LENGTH;
	if (family != STUN_FAMILY_IPV4 && family != STUN_FAMILY_IPV6)
		return STUN_E_ATTR_VALUE;
	if (!rdv_cand_type_name(c->type) || !flen || flen > RDV_FOUNDATION_MAX)
		return STUN_E_ATTR_VALUE;
	if (c->transport != RDV_TRANSPORT_UDP && c->transport != RDV_TRANSPORT_TCP)
		return STUN_E_ATTR_VALUE;
	c->component = v[10];
	rc = cand_addr(&r, family, &c->addr);
	if (rc)
		return rc;
	f = stun_rd_take(&r, flen);
	if (!f || stun_rd_left(&r))
		return STUN_E_ATTR_LENGTH;
	return get_str(c->foundation, f, flen, 1, RDV_FOUNDATION_MAX, rdv_ice_chars);
}

static int get_u64(uint64_t *out, const uint8_t *v, uint16_t len)
{
	struct stun_rd r;

	if (len != 8)
		return STUN_E_ATTR_LENGTH;
	stun_rd_init(&r, v, len);
	*out = stun_rd_u64(&r);
	return 0;
}

static int get_offer_id(uint8_t *out, const uint8_t *v, uint16_t len)
{
	if (len != RDV_OFFER_ID_LEN)
		return STUN_E_ATTR_LENGTH;
	memcpy(out, v, len);
	return 0;
}

static bool id_ok(const char *s, size_t len)
{
	return rdv_id_valid(s, len);
}

/* Single-valued attributes: the first one counts (RFC 8489 s14). */
static int decode_attr(struct rdv_msg *r, uint16_t type, const uint8_t *v, uint16_t len)
{
	switch (type) {
	case RDV_ATTR_ID:
		if (r->has_id)
			return 0;
		r->has_id = true;
		return get_str(r->id, v, len, 1, RDV_ID_MAX, id_ok);
	case RDV_ATTR_CANDIDATE:
		if (r->n_cand >= RDV_MAX_CANDIDATES)
			return STUN_E_TOO_MANY;
		return get_cand(&r->cand[r->n_cand++], v, len);
	case RDV_ATTR_ICE_UFRAG:
		if (r->has_ufrag)
			return 0;
		r->has_ufrag = true;
		return get_str(r->ufrag, v, len, RDV_UFRAG_MIN, RDV_UFRAG_MAX, rdv_ice_chars);
	case RDV_ATTR_ICE_PWD:
		if (r->has_pwd)
			return 0;
		r->has_pwd = true;
		return get_str(r->pwd, v, len, RDV_PWD_MIN, RDV_PWD_MAX, rdv_ice_chars);
	case RDV_ATTR_TIE_BREAKER:
		if (r->has_tie_breaker)
			return 0;
		r->has_tie_breaker = true;
		return get_u64(&r->tie_breaker, v, len);
	case RDV_ATTR_OFFER_ID:
		if (r->has_offer_id)
			return 0;
		r->has_offer_id = true;
		return get_offer_id(r->offer_id, v, len);
	case RDV_ATTR_FROM_USER:
		if (r->has_from)
			return 0;
		r->has_from = true;
		return get_str(r->from, v, len, 1, RDV_USER_MAX, NULL);
	}
	return 0;
}

/* The end of the attributes that count: the first integrity or
 * fingerprint attribute (RFC 8489 s14.5-s14.7). */
static size_t covered_end(const struct stun_msg *m)
{
	size_t end = m->raw_len;

	if (m->fp_off && m->fp_off < end)
		end = m->fp_off;
	if (m->mi256_off && m->mi256_off < end)
		end = m->mi256_off;
	if (m->mi_off && m->mi_off < end)
		end = m->mi_off;
	return end;
}

int rdv_msg_decode(struct rdv_msg *r, const struct stun_msg *m)
{
	struct stun_rd rd;
	int rc;

	if (!r || !m || !m->raw || m->raw_len < STUN_HDR_LEN)
		return STUN_E_ARG;
	memset(r, 0, sizeof(*r));
	stun_rd_init(&rd, m->raw, covered_end(m));
	stun_rd_take(&rd, STUN_HDR_LEN);
	while (stun_rd_left(&rd) > 0) {
		uint16_t type = stun_rd_u16(&rd);
		uint16_t len = stun_rd_u16(&rd);
		const uint8_t *v = stun_rd_take(&rd, len);

		stun_rd_take(&rd, (4u - len % 4) % 4);
		if (!v || rd.err)
			return STUN_E_ATTR_OVERRUN;
		rc = decode_attr(r, type, v, len);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- building ---- */

void rdv_build_id(struct stun_builder *b, const char *id)
{
	size_t len = id ? strlen(id) : 0;

	if (!rdv_id_valid(id, len)) {
		if (!b->err)
			b->err = STUN_E_ARG;
		return;
	}
	stun_build_bytes(b, RDV_ATTR_ID, id, len);
}

static bool cand_ok(const struct rdv_candidate *c, size_t flen)
{
	int fam = stun_sockaddr_family(&c->addr);

	if (!rdv_cand_type_name(c->type) || (fam != AF_INET && fam != AF_INET6))
		return false;
	if (c->transport != RDV_TRANSPORT_UDP && c->transport != RDV_TRANSPORT_TCP)
		return false;
	return flen >= 1 && flen <= RDV_FOUNDATION_MAX && rdv_ice_chars(c->foundation, flen);
}

void rdv_build_candidate(struct stun_builder *b, const struct rdv_candidate *c)
{
	size_t flen = strnlen(c->foundation, sizeof(c->foundation));
	bool v4 = stun_sockaddr_family(&c->addr) == AF_INET;
	size_t alen = v4 ? 4 : 16;
	uint8_t *p;

	if (!cand_ok(c, flen)) {
		if (!b->err)
			b->err = STUN_E_ARG;
		return;
	}
	p = stun_build_reserve(b, RDV_ATTR_CANDIDATE, 12 + alen + flen);
	if (!p)
		return;
	p[0] = c->type;
	p[1] = c->transport;
	p[2] = v4 ? STUN_FAMILY_IPV4 : STUN_FAMILY_IPV6;
	p[3] = (uint8_t)flen;
	stun_put32(p + 4, c->priority);
	stun_put16(p + 8, stun_sockaddr_port(&c->addr) ^ (uint16_t)(STUN_MAGIC_COOKIE >> 16));
	p[10] = c->component;
	p[11] = 0;
	memcpy(p + 12, v4 ? (const void *)&c->addr.in4.sin_addr : (const void *)&c->addr.in6.sin6_addr,
	       alen);
	xor_cookie(p + 12, alen);
	memcpy(p + 12 + alen, c->foundation, flen);
}

void rdv_build_offer_id(struct stun_builder *b, const uint8_t id[RDV_OFFER_ID_LEN])
{
	stun_build_bytes(b, RDV_ATTR_OFFER_ID, id, RDV_OFFER_ID_LEN);
}

void rdv_build_from(struct stun_builder *b, const char *user, size_t len)
{
	if (len > RDV_USER_MAX)
		len = RDV_USER_MAX;
	stun_build_bytes(b, RDV_ATTR_FROM_USER, user, len);
}

void rdv_build_session(struct stun_builder *b, const struct rdv_msg *r)
{
	for (unsigned i = 0; i < r->n_cand; i++)
		rdv_build_candidate(b, &r->cand[i]);
	if (r->has_ufrag)
		stun_build_str(b, RDV_ATTR_ICE_UFRAG, r->ufrag);
	if (r->has_pwd)
		stun_build_str(b, RDV_ATTR_ICE_PWD, r->pwd);
	if (r->has_tie_breaker)
		stun_build_u64(b, RDV_ATTR_TIE_BREAKER, r->tie_breaker);
}
