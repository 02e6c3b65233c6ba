/* stun_build: the message builder declared in stun_msg.h. Writes into the
 * caller's buffer; errors are sticky; allocates nothing itself. */
#include "stun_msg.h"
#include "stun_attr.h"
#include "stun_rd.h"

#include <string.h>
#include <mbedtls/md.h>
#include <zlib.h>

static void fail(struct stun_builder *b, int err)
{
	if (!b->err)
		b->err = err;
}

/* RFC 8489 s5: interleave the method and class bits into the type. */
static uint16_t msg_type(uint16_t method, uint8_t cls)
{
	return (uint16_t)((method & 0x000F) | (method & 0x0070) << 1 | (method & 0x0F80) << 2 |
			  (cls & 1) << 4 | (cls & 2) << 7);
}

static void start(struct stun_builder *b, uint8_t *buf, size_t cap, uint16_t method, uint8_t cls)
{
	b->buf = buf;
	b->cap = cap;
	b->len = 0;
	b->err = 0;
	b->classic = false;
	if (!buf || cap < STUN_HDR_LEN) {
		fail(b, STUN_E_NOSPACE);
		return;
	}
	if (method > 0x0FFF || cls > 3) {
		fail(b, STUN_E_ARG);
		return;
	}
	stun_put16(buf, msg_type(method, cls));
	stun_put16(buf + 2, 0);
	b->len = STUN_HDR_LEN;
}

void stun_build_init(struct stun_builder *b, uint8_t *buf, size_t cap,
		     uint16_t method, uint8_t cls, const uint8_t tid[STUN_TID_LEN])
{
	start(b, buf, cap, method, cls);
	if (b->err)
		return;
	stun_put32(buf + 4, STUN_MAGIC_COOKIE);
	memcpy(buf + 8, tid, STUN_TID_LEN);
}

void stun_build_init_classic(struct stun_builder *b, uint8_t *buf, size_t cap,
			     uint16_t method, uint8_t cls, const uint8_t tid16[16])
{
	start(b, buf, cap, method, cls);
	if (b->err)
		return;
	b->classic = true;
	memcpy(buf + 4, tid16, 16);
}

/* Append a TLV header for len value bytes, pad, fix the header length;
 * returns where the value goes, or NULL (error recorded). */
static uint8_t *attr_begin(struct stun_builder *b, uint16_t type, size_t len, uint8_t pad)
{
	size_t padded = (len + 3) & ~(size_t)3;
	uint8_t *p;

	if (b->err)
		return NULL;
	if (len > 0xFFFF)
		return fail(b, STUN_E_ARG), NULL;
	if (b->cap - b->len < 4 + padded || b->len + 4 + padded > STUN_MAX_MSG_LEN)
		return fail(b, STUN_E_NOSPACE), NULL;
	p = b->buf + b->len;
	stun_put16(p, type);
	stun_put16(p + 2, (uint16_t)len);
	for (size_t i = 4 + len; i < 4 + padded; i++) /* 0-3 bytes: no memset call */
		p[i] = pad;
	b->len += 4 + padded;
	stun_put16(b->buf + 2, (uint16_t)(b->len - STUN_HDR_LEN));
	return p + 4;
}

uint8_t *stun_build_reserve(struct stun_builder *b, uint16_t type, size_t len)
{
	return attr_begin(b, type, len, 0);
}

void stun_build_bytes_pad(struct stun_builder *b, uint16_t type, const void *v,
			  size_t len, uint8_t pad)
{
	uint8_t *p;

	if (!v && len) {
		fail(b, STUN_E_ARG);
		return;
	}
	p = attr_begin(b, type, len, pad);
	if (p && len)
		memcpy(p, v, len);
}

void stun_build_bytes(struct stun_builder *b, uint16_t type, const void *v, size_t len)
{
	stun_build_bytes_pad(b, type, v, len, 0);
}

void stun_build_str(struct stun_builder *b, uint16_t type, const char *s)
{
	if (!s) {
		fail(b, STUN_E_ARG);
		return;
	}
	stun_build_bytes(b, type, s, strlen(s));
}

void stun_build_empty(struct stun_builder *b, uint16_t type)
{
	attr_begin(b, type, 0, 0);
}

void stun_build_u8(struct stun_builder *b, uint16_t type, uint8_t v)
{
	uint8_t val[4] = { v, 0, 0, 0 };

	stun_build_bytes(b, type, val, 4);
}

void stun_build_u16(struct stun_builder *b, uint16_t type, uint16_t v)
{
	uint8_t val[4] = { (uint8_t)(v >> 8), (uint8_t)v, 0, 0 };

	stun_build_bytes(b, type, val, 4);
}

void stun_build_u32(struct stun_builder *b, uint16_t type, uint32_t v)
{
	uint8_t val[4];

	stun_put32(val, v);
	stun_build_bytes(b, type, val, 4);
}

void stun_build_u64(struct stun_builder *b, uint16_t type, uint64_t v)
{
	uint8_t val[8];

	stun_put32(val, (uint32_t)(v >> 32));
	stun_put32(val + 4, (uint32_t)v);
	stun_build_bytes(b, type, val, 8);
}

/* RFC 8489 s14.1/s14.2; xk is the cookie+tid to XOR with, or NULL.
 * Written in place (this runs for every Binding answer). */
static void put_addr(struct stun_builder *b, uint16_t type, const stun_sockaddr *a,
		     const uint8_t *xk)
{
	bool v4 = a && a->sa.sa_family == AF_INET;
	const uint8_t *ip;
	size_t n, i;
	uint16_t port;
	uint8_t *p;

	if (!a || (!v4 && a->sa.sa_family != AF_INET6)) {
		fail(b, STUN_E_ARG);
		return;
	}
	n = v4 ? 4 : 16;
	ip = v4 ? (const uint8_t *)&a->in4.sin_addr : (const uint8_t *)&a->in6.sin6_addr;
	port = ntohs(v4 ? a->in4.sin_port : a->in6.sin6_port);
	p = attr_begin(b, type, 4 + n, 0);
	if (!p)
		return;
	p[0] = 0;
	p[1] = v4 ? STUN_FAMILY_IPV4 : STUN_FAMILY_IPV6;
	stun_put16(p + 2, xk ? port ^ (uint16_t)(STUN_MAGIC_COOKIE >> 16) : port);
	memcpy(p + 4, ip, n);
	for (i = 0; xk && i < n; i++)
		p[4 + i] ^= xk[i];
}

void stun_build_addr(struct stun_builder *b, uint16_t type, const stun_sockaddr *a)
{
	put_addr(b, type, a, NULL);
}

void stun_build_xor_addr(struct stun_builder *b, uint16_t type, const stun_sockaddr *a)
{
	if (b->err)
		return;
	put_addr(b, type, a, b->buf + 4);
}

/* Class/number + reason, shared by ERROR-CODE (s14.8) and
 * ADDRESS-ERROR-CODE (RFC 8656 s18.12). */
static void put_code(struct stun_builder *b, uint16_t type, uint8_t first,
		     uint16_t code, const char *reason)
{
	size_t rlen;
	uint8_t *p;

	if (code < 300 || code > 699) {
		fail(b, STUN_E_ARG);
		return;
	}
	if (!reason)
		reason = stun_error_reason(code);
	rlen = strlen(reason);
	if (rlen > 763) {
		fail(b, STUN_E_ARG);
		return;
	}
	p = attr_begin(b, type, 4 + rlen, 0);
	if (!p)
		return;
	p[0] = first;
	p[1] = 0;
	p[2] = (uint8_t)(code / 100);
	p[3] = (uint8_t)(code % 100);
	memcpy(p + 4, reason, rlen);
}

void stun_build_error(struct stun_builder *b, uint16_t code, const char *reason)
{
	put_code(b, STUN_ATTR_ERROR_CODE, 0, code, reason);
}

void stun_build_address_error(struct stun_builder *b, uint8_t family, uint16_t code,
			      const char *reason)
{
	put_code(b, STUN_ATTR_ADDRESS_ERROR_CODE, family, code, reason);
}

void stun_build_unknown(struct stun_builder *b, const uint16_t *types, size_t n)
{
	uint8_t *p;
	size_t i;

	if (!types && n) {
		fail(b, STUN_E_ARG);
		return;
	}
	p = attr_begin(b, STUN_ATTR_UNKNOWN_ATTRIBUTES, 2 * n, 0);
	for (i = 0; p && i < n; i++)
		stun_put16(p + 2 * i, types[i]);
}

/* s14.11: algorithm + zero-length parameters for each. */
void stun_build_pw_algs(struct stun_builder *b, const uint16_t *algs, size_t n)
{
	uint8_t *p;
	size_t i;

	if (!algs && n) {
		fail(b, STUN_E_ARG);
		return;
	}
	p = attr_begin(b, STUN_ATTR_PASSWORD_ALGORITHMS, 4 * n, 0);
	for (i = 0; p && i < n; i++) {
		stun_put16(p + 4 * i, algs[i]);
		stun_put16(p + 4 * i + 2, 0);
	}
}

/* s14.5/s14.6: the header length already counts the attribute when the
 * HMAC runs over everything before it. */
static void put_mac(struct stun_builder *b, uint16_t type, int md_type, size_t maclen,
		    const uint8_t *key, size_t keylen)
{
	uint8_t mac[32];
	uint8_t *p;
	size_t off;

	if (!key && keylen) {
		fail(b, STUN_E_ARG);
		return;
	}
	p = attr_begin(b, type, maclen, 0);
	if (!p)
		return;
	off = (size_t)(p - 4 - b->buf);
	if (stun_hmac_msg(md_type, key, keylen, b->buf, off, b->len - STUN_HDR_LEN, mac)) {
		fail(b, STUN_E_CRYPTO);
		return;
	}
	memcpy(p, mac, maclen);
}

void stun_build_mi(struct stun_builder *b, const uint8_t *key, size_t keylen)
{
	put_mac(b, STUN_ATTR_MESSAGE_INTEGRITY, MBEDTLS_MD_SHA1, 20, key, keylen);
}

void stun_build_mi256(struct stun_builder *b, const uint8_t *key, size_t keylen)
{
	put_mac(b, STUN_ATTR_MESSAGE_INTEGRITY_SHA256, MBEDTLS_MD_SHA256, 32, key, keylen);
}

/* s14.7: CRC-32 of everything before FINGERPRINT, XOR 0x5354554e. */
void stun_build_fingerprint(struct stun_builder *b)
{
	uint8_t *p = attr_begin(b, STUN_ATTR_FINGERPRINT, 4, 0);

	if (!p)
		return;
	stun_put32(p, (uint32_t)crc32(0L, b->buf, (uInt)(b->len - 8)) ^ STUN_FINGERPRINT_XOR);
}

int stun_build_finish(struct stun_builder *b)
{
	if (b->err)
		return b->err;
	return (int)b->len;
}
