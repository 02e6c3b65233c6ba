/* stun_attr: table-driven attribute decoding and encoding. */
#include "stun_attr.h"

#include <stddef.h>
#include <string.h>

#define F(field) ((uint16_t)offsetof(struct stun_msg, field))

/* Every known attribute, once, sorted by type. Bounds: RFC 8489 s14,
 * RFC 8656 s18, RFC 5780 s7, RFC 8445 s16.1, RFC 6062 s6.2. Text
 * attributes allow the decoded maximum the RFCs give (763 bytes for 128
 * characters); USERNAME keeps RFC 5389's 512 so older clients are not
 * refused. R = a row, L = a list of XOR'ed addresses. */
#define ATTR_ROWS(R, L) \
	R(MAPPED_ADDRESS, 8, 20, ADDR, mapped, "MAPPED-ADDRESS") \
	R(CHANGE_REQUEST, 4, 4, U32, change_request, "CHANGE-REQUEST") \
	R(USERNAME, 0, 512, BYTES, username, "USERNAME") \
	R(MESSAGE_INTEGRITY, 20, 20, BYTES, mi, "MESSAGE-INTEGRITY") \
	R(ERROR_CODE, 4, 767, ERROR, error, "ERROR-CODE") \
	R(UNKNOWN_ATTRIBUTES, 0, 65535, UNKNOWN, unknown_attrs, "UNKNOWN-ATTRIBUTES") \
	R(CHANNEL_NUMBER, 4, 4, U16, channel_number, "CHANNEL-NUMBER") \
	R(LIFETIME, 4, 4, U32, lifetime, "LIFETIME") \
	L(XOR_PEER_ADDRESS, xor_peer, n_xor_peer, STUN_MAX_PEER_ADDRS, "XOR-PEER-ADDRESS") \
	R(DATA, 0, 65535, BYTES, data, "DATA") \
	R(REALM, 0, 763, BYTES, realm, "REALM") \
	R(NONCE, 0, 763, BYTES, nonce, "NONCE") \
	L(XOR_RELAYED_ADDRESS, xor_relayed, n_xor_relayed, STUN_MAX_RELAYED_ADDRS, "XOR-RELAYED-ADDRESS") \
	R(REQUESTED_ADDRESS_FAMILY, 4, 4, U8, requested_family, "REQUESTED-ADDRESS-FAMILY") \
	R(EVEN_PORT, 1, 1, EVEN_PORT, even_port_reserve, "EVEN-PORT") \
	R(REQUESTED_TRANSPORT, 4, 4, U8, requested_transport, "REQUESTED-TRANSPORT") \
	R(DONT_FRAGMENT, 0, 0, FLAG, present, "DONT-FRAGMENT") \
	R(MESSAGE_INTEGRITY_SHA256, 16, 32, BYTES, mi256, "MESSAGE-INTEGRITY-SHA256") \
	R(PASSWORD_ALGORITHM, 4, 516, PW_ALG, pw_alg, "PASSWORD-ALGORITHM") \
	R(USERHASH, 32, 32, BYTES, userhash, "USERHASH") \
	R(XOR_MAPPED_ADDRESS, 8, 20, XADDR, xor_mapped, "XOR-MAPPED-ADDRESS") \
	R(RESERVATION_TOKEN, 8, 8, U64, reservation_token, "RESERVATION-TOKEN") \
	R(PRIORITY, 4, 4, U32, priority, "PRIORITY") \
	R(USE_CANDIDATE, 0, 0, FLAG, present, "USE-CANDIDATE") \
	R(PADDING, 0, 65535, BYTES, padding, "PADDING") \
	R(RESPONSE_PORT, 2, 4, U16, response_port, "RESPONSE-PORT") \
	R(CONNECTION_ID, 4, 4, U32, connection_id, "CONNECTION-ID") \
	R(ADDITIONAL_ADDRESS_FAMILY, 4, 4, U8, additional_family, "ADDITIONAL-ADDRESS-FAMILY") \
	R(ADDRESS_ERROR_CODE, 4, 767, ADDR_ERROR, address_error, "ADDRESS-ERROR-CODE") \
	R(PASSWORD_ALGORITHMS, 0, 65535, PW_ALGS, pw_algs, "PASSWORD-ALGORITHMS") \
	R(ALTERNATE_DOMAIN, 0, 255, BYTES, alternate_domain, "ALTERNATE-DOMAIN") \
	R(ICMP, 8, 8, ICMP, icmp_type, "ICMP") \
	R(SOFTWARE, 0, 763, BYTES, software, "SOFTWARE") \
	R(ALTERNATE_SERVER, 8, 20, ADDR, alternate_server, "ALTERNATE-SERVER") \
	R(FINGERPRINT, 4, 4, U32, fingerprint, "FINGERPRINT") \
	R(ICE_CONTROLLED, 8, 8, U64, ice_controlled, "ICE-CONTROLLED") \
	R(ICE_CONTROLLING, 8, 8, U64, ice_controlling, "ICE-CONTROLLING") \
	R(RESPONSE_ORIGIN, 8, 20, ADDR, response_origin, "RESPONSE-ORIGIN") \
	R(OTHER_ADDRESS, 8, 20, ADDR, other_address, "OTHER-ADDRESS")

#define ROW(t, lo, hi, k, field, nm) \
	{ STUN_ATTR_##t, lo, hi, STUN_AK_##k, 0, F(field), 0, nm },
#define LIST(t, field, cnt, cp, nm) \
	{ STUN_ATTR_##t, 8, 20, STUN_AK_XADDR_LIST, cp, F(field), F(cnt), nm },
static const struct stun_attr_def attr_table[] = { ATTR_ROWS(ROW, LIST) };

/* Direct lookup instead of a search, since it runs for every attribute
 * parsed and every stun_msg_has(): the known types all lie in 0x0000-0x003F
 * and 0x8000-0x803F, so (bit 15, low 6 bits) is a 7-bit slot holding the
 * row index + 1. Two types in one slot fail the build (-Woverride-init),
 * as does a type outside the two ranges. */
#define SLOT_OUTSIDE 0x7FC0u
#define SLOT(type) ((((type) >> 9) & 0x40u) | ((type) & 0x3Fu))
#define ROW_IDX(t, ...) IDX_##t,
enum attr_idx { ATTR_ROWS(ROW_IDX, ROW_IDX) IDX__COUNT };
#define ROW_SLOT(t, ...) [SLOT(STUN_ATTR_##t)] = IDX_##t + 1,
static const uint8_t attr_slot[128] = { ATTR_ROWS(ROW_SLOT, ROW_SLOT) };
#define ROW_RANGE(t, ...) && !(STUN_ATTR_##t & SLOT_OUTSIDE)
_Static_assert(1 ATTR_ROWS(ROW_RANGE, ROW_RANGE), "an attribute type outside the slot ranges");

#define N_ATTRS (sizeof(attr_table) / sizeof(attr_table[0]))
_Static_assert(N_ATTRS <= 64, "stun_msg.present has 64 bits");

size_t stun_attr_count(void)
{
	return N_ATTRS;
}

const struct stun_attr_def *stun_attr_at(size_t i)
{
	return i < N_ATTRS ? &attr_table[i] : NULL;
}

unsigned stun_attr_bit(const struct stun_attr_def *d)
{
	return (unsigned)(d - attr_table);
}

const struct stun_attr_def *stun_attr_find(uint16_t type)
{
	const struct stun_attr_def *d;
	unsigned i;

	if (type & SLOT_OUTSIDE)
		return NULL;
	i = attr_slot[SLOT(type)];
	if (!i)
		return NULL;
	d = &attr_table[i - 1];
	return d->type == type ? d : NULL;
}

/* ---- decoding ---- */

static void *field(struct stun_msg *m, uint16_t off)
{
	return (uint8_t *)m + off;
}

/* MAPPED-ADDRESS layout (s14.1); xk is the header's cookie+tid for the
 * XOR form (s14.2), NULL for the plain one. */
static int dec_addr(struct stun_rd *v, uint16_t len, const uint8_t *xk, stun_sockaddr *out)
{
	stun_sockaddr a;
	uint8_t fam, ip[16];
	uint16_t port;
	const uint8_t *p;
	size_t n, i;

	stun_rd_u8(v); /* reserved */
	fam = stun_rd_u8(v);
	port = stun_rd_u16(v);
	if (fam != STUN_FAMILY_IPV4 && fam != STUN_FAMILY_IPV6)
		return STUN_E_ATTR_VALUE;
	n = fam == STUN_FAMILY_IPV4 ? 4 : 16;
	if (len != 4 + n || !(p = stun_rd_take(v, n)))
		return STUN_E_ATTR_LENGTH;
	for (i = 0; i < n; i++)
		ip[i] = xk ? p[i] ^ xk[i] : p[i];
	if (xk)
		port ^= (uint16_t)(STUN_MAGIC_COOKIE >> 16);
	memset(&a, 0, sizeof(a));
	if (fam == STUN_FAMILY_IPV4) {
		a.in4.sin_family = AF_INET;
		a.in4.sin_port = htons(port);
		memcpy(&a.in4.sin_addr, ip, 4);
	} else {
		a.in6.sin6_family = AF_INET6;
		a.in6.sin6_port = htons(port);
		memcpy(&a.in6.sin6_addr, ip, 16);
	}
	*out = a;
	return 0;
}

/* Class (3..6) and number (0..99) of ERROR-CODE, s14.8. */
static int dec_code(struct stun_rd *v, uint16_t *code)
{
	uint8_t cls = stun_rd_u8(v) & 0x07;
	uint8_t num = stun_rd_u8(v);

	if (cls < 3 || cls > 6 || num > 99)
		return STUN_E_ATTR_VALUE;
	*code = (uint16_t)(cls * 100 + num);
	return 0;
}

static struct stun_bytes rest(struct stun_rd *v)
{
	struct stun_bytes b;

	b.len = (uint16_t)stun_rd_left(v);
	b.p = stun_rd_take(v, b.len);
	return b;
}

static int dec_error(struct stun_msg *m, struct stun_rd *v)
{
	struct stun_error_code e;
	int rc;

	stun_rd_u16(v); /* reserved */
	rc = dec_code(v, &e.code);
	if (rc)
		return rc;
	e.reason = rest(v);
	m->error = e;
	return 0;
}

/* RFC 8656 s18.12: family, 13 reserved bits, class, number, reason. */
static int dec_addr_error(struct stun_msg *m, struct stun_rd *v)
{
	struct stun_address_error e;
	int rc;

	e.family = stun_rd_u8(v);
	stun_rd_u8(v);
	rc = dec_code(v, &e.code);
	if (rc)
		return rc;
	if (e.family != STUN_FAMILY_IPV4 && e.family != STUN_FAMILY_IPV6)
		return STUN_E_ATTR_VALUE;
	e.reason = rest(v);
	m->address_error = e;
	return 0;
}

static int dec_unknown(struct stun_msg *m, struct stun_rd *v, uint16_t len)
{
	uint8_t i, n = (uint8_t)(len / 2);

	if (len % 2)
		return STUN_E_ATTR_LENGTH;
	if (len / 2 > STUN_MAX_UNKNOWN)
		return STUN_E_TOO_MANY;
	for (i = 0; i < n; i++)
		m->unknown_attrs[i] = stun_rd_u16(v);
	m->n_unknown_attrs = n;
	return 0;
}

/* One algorithm entry: alg, params length, params; inside the list of
 * PASSWORD-ALGORITHMS the params are padded to 4 bytes (s14.11), in
 * PASSWORD-ALGORITHM the attribute's own padding does that (s14.12). */
static int dec_pw_entry(struct stun_rd *v, struct stun_pw_alg_entry *e, bool padded)
{
	uint16_t plen;

	e->alg = stun_rd_u16(v);
	plen = stun_rd_u16(v);
	e->params.p = stun_rd_take(v, plen);
	e->params.len = plen;
	if (padded)
		stun_rd_take(v, (4 - plen % 4) % 4);
	return v->err ? STUN_E_ATTR_VALUE : 0;
}

static int dec_pw_algs(struct stun_msg *m, struct stun_rd *v)
{
	struct stun_pw_alg_entry e;
	uint8_t n = 0;
	int rc;

	while (stun_rd_left(v) > 0) {
		rc = dec_pw_entry(v, &e, true);
		if (rc)
			return rc;
		if (n == STUN_MAX_PW_ALGS)
			return STUN_E_TOO_MANY;
		m->pw_algs[n++] = e;
	}
	m->n_pw_algs = n;
	return 0;
}

static int dec_pw_alg(struct stun_msg *m, struct stun_rd *v)
{
	struct stun_pw_alg_entry e;
	int rc = dec_pw_entry(v, &e, false);

	if (rc)
		return rc;
	if (stun_rd_left(v))
		return STUN_E_ATTR_LENGTH;
	m->pw_alg = e;
	return 0;
}

static int dec_icmp(struct stun_msg *m, struct stun_rd *v)
{
	stun_rd_u16(v); /* reserved */
	m->icmp_type = stun_rd_u8(v);
	m->icmp_code = stun_rd_u8(v);
	m->icmp_data = stun_rd_u32(v);
	return 0;
}

static int dec_list(struct stun_msg *m, const struct stun_attr_def *d,
		    struct stun_rd *v, uint16_t len)
{
	uint8_t *cnt = field(m, d->cnt_off);
	stun_sockaddr *arr = field(m, d->off);
	int rc;

	if (*cnt >= d->cap)
		return STUN_E_TOO_MANY;
	rc = dec_addr(v, len, m->raw + 4, &arr[*cnt]);
	if (rc)
		return rc;
	(*cnt)++;
	return 0;
}

static int dec_scalar(struct stun_msg *m, const struct stun_attr_def *d, struct stun_rd *v)
{
	void *f = field(m, d->off);

	switch (d->kind) {
	case STUN_AK_U8:
		*(uint8_t *)f = stun_rd_u8(v);
		return 0;
	case STUN_AK_U16:
		*(uint16_t *)f = stun_rd_u16(v);
		return 0;
	case STUN_AK_U32:
		*(uint32_t *)f = stun_rd_u32(v);
		return 0;
	case STUN_AK_U64:
		*(uint64_t *)f = stun_rd_u64(v);
		return 0;
	case STUN_AK_FLAG:
		return 0;
	case STUN_AK_EVEN_PORT:
		*(bool *)f = (stun_rd_u8(v) & 0x80) != 0;
		return 0;
	}
	return STUN_E_ARG;
}

static int dec_kind(struct stun_msg *m, const struct stun_attr_def *d,
		    struct stun_rd *v, uint16_t len)
{
	switch (d->kind) {
	case STUN_AK_ADDR:
		return dec_addr(v, len, NULL, field(m, d->off));
	case STUN_AK_XADDR:
		return dec_addr(v, len, m->raw + 4, field(m, d->off));
	case STUN_AK_XADDR_LIST:
		return dec_list(m, d, v, len);
	case STUN_AK_BYTES:
		*(struct stun_bytes *)field(m, d->off) = rest(v);
		return 0;
	case STUN_AK_ERROR:
		return dec_error(m, v);
	case STUN_AK_ADDR_ERROR:
		return dec_addr_error(m, v);
	case STUN_AK_UNKNOWN:
		return dec_unknown(m, v, len);
	case STUN_AK_PW_ALGS:
		return dec_pw_algs(m, v);
	case STUN_AK_PW_ALG:
		return dec_pw_alg(m, v);
	case STUN_AK_ICMP:
		return dec_icmp(m, v);
	}
	return dec_scalar(m, d, v);
}

/* Only the first occurrence of a single-valued attribute counts (RFC 8489
 * s14); repeats are still length-checked. Lists take every occurrence. */
int stun_attr_decode(struct stun_msg *m, const struct stun_attr_def *d,
		     const uint8_t *val, uint16_t len)
{
	uint64_t bit = 1ull << stun_attr_bit(d);
	struct stun_rd v;
	int rc;

	if (len < d->min || len > d->max)
		return STUN_E_ATTR_LENGTH;
	if ((m->present & bit) && d->kind != STUN_AK_XADDR_LIST)
		return 0;
	stun_rd_init(&v, val, len);
	rc = dec_kind(m, d, &v, len);
	if (rc)
		return rc;
	if (v.err)
		return STUN_E_ATTR_LENGTH;
	m->present |= bit;
	return 0;
}

/* ---- encoding (from a decoded message) ---- */

static void enc_list(struct stun_builder *b, const struct stun_msg *m,
		     const struct stun_attr_def *d)
{
	const stun_sockaddr *arr = (const void *)((const uint8_t *)m + d->off);
	uint8_t i, n = *((const uint8_t *)m + d->cnt_off);

	for (i = 0; i < n; i++)
		stun_build_xor_addr(b, d->type, &arr[i]);
}

static void enc_pw_alg(struct stun_builder *b, uint16_t type, const struct stun_pw_alg_entry *e)
{
	uint8_t *p = stun_build_reserve(b, type, 4u + e->params.len);

	if (!p)
		return;
	stun_put16(p, e->alg);
	stun_put16(p + 2, e->params.len);
	if (e->params.len)
		memcpy(p + 4, e->params.p, e->params.len);
}

static void enc_pw_algs(struct stun_builder *b, const struct stun_msg *m)
{
	size_t i, len = 0;
	uint8_t *p;

	for (i = 0; i < m->n_pw_algs; i++)
		len += 4 + ((m->pw_algs[i].params.len + 3u) & ~3u);
	p = stun_build_reserve(b, STUN_ATTR_PASSWORD_ALGORITHMS, len);
	if (!p)
		return;
	memset(p, 0, len);
	for (i = 0; i < m->n_pw_algs; i++) {
		const struct stun_pw_alg_entry *e = &m->pw_algs[i];

		stun_put16(p, e->alg);
		stun_put16(p + 2, e->params.len);
		if (e->params.len)
			memcpy(p + 4, e->params.p, e->params.len);
		p += 4 + ((e->params.len + 3u) & ~3u);
	}
}

static void enc_icmp(struct stun_builder *b, const struct stun_msg *m)
{
	uint8_t *p = stun_build_reserve(b, STUN_ATTR_ICMP, 8);

	if (!p)
		return;
	stun_put16(p, 0);
	p[2] = m->icmp_type;
	p[3] = m->icmp_code;
	stun_put32(p + 4, m->icmp_data);
}

static void enc_text(struct stun_builder *b, const struct stun_attr_def *d, const void *f)
{
	const struct stun_bytes *s;
	const struct stun_error_code *e = f;
	const struct stun_address_error *ae = f;
	char reason[768];

	s = d->kind == STUN_AK_ERROR ? &e->reason : &ae->reason;
	memcpy(reason, s->p ? (const char *)s->p : "", s->len);
	reason[s->len] = '\0';
	if (d->kind == STUN_AK_ERROR)
		stun_build_error(b, e->code, reason);
	else
		stun_build_address_error(b, ae->family, ae->code, reason);
}

static void enc_scalar(struct stun_builder *b, const struct stun_attr_def *d, const void *f)
{
	switch (d->kind) {
	case STUN_AK_U8:
		stun_build_u8(b, d->type, *(const uint8_t *)f);
		return;
	case STUN_AK_U16:
		stun_build_u16(b, d->type, *(const uint16_t *)f);
		return;
	case STUN_AK_U32:
		stun_build_u32(b, d->type, *(const uint32_t *)f);
		return;
	case STUN_AK_U64:
		stun_build_u64(b, d->type, *(const uint64_t *)f);
		return;
	case STUN_AK_FLAG:
		stun_build_empty(b, d->type);
		return;
	case STUN_AK_EVEN_PORT: {
		uint8_t v = *(const bool *)f ? 0x80 : 0;

		stun_build_bytes(b, d->type, &v, 1);
		return;
	}
	}
}

/* The kinds with a layout of their own; false for the plain ones. */
static bool enc_special(struct stun_builder *b, const struct stun_msg *m,
			const struct stun_attr_def *d, const void *f)
{
	switch (d->kind) {
	case STUN_AK_ERROR:
	case STUN_AK_ADDR_ERROR:
		enc_text(b, d, f);
		return true;
	case STUN_AK_UNKNOWN:
		stun_build_unknown(b, m->unknown_attrs, m->n_unknown_attrs);
		return true;
	case STUN_AK_PW_ALGS:
		enc_pw_algs(b, m);
		return true;
	case STUN_AK_PW_ALG:
		enc_pw_alg(b, d->type, &m->pw_alg);
		return true;
	case STUN_AK_ICMP:
		enc_icmp(b, m);
		return true;
	}
	return false;
}

void stun_attr_encode(struct stun_builder *b, const struct stun_msg *m, uint16_t type)
{
	const struct stun_attr_def *d = stun_attr_find(type);
	const struct stun_bytes *v;
	const void *f;

	if (!d || !stun_msg_has(m, type))
		return;
	f = (const uint8_t *)m + d->off;
	v = f;
	if (d->kind == STUN_AK_ADDR)
		stun_build_addr(b, type, f);
	else if (d->kind == STUN_AK_XADDR)
		stun_build_xor_addr(b, type, f);
	else if (d->kind == STUN_AK_XADDR_LIST)
		enc_list(b, m, d);
	else if (d->kind == STUN_AK_BYTES)
		stun_build_bytes(b, type, v->p, v->len);
	else if (!enc_special(b, m, d, f))
		enc_scalar(b, d, f);
}
