/* stun_rd: the one bounds-checked reader every wire read goes through.
 * It fails closed: the first read past the end sets err, and every later
 * read returns zeroes without touching memory. Private to proto/. */
#ifndef NATPROTO_STUN_RD_H
#define NATPROTO_STUN_RD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stun_rd {
	const uint8_t *p;
	size_t len;
	size_t off;
	bool err;
};

static inline void stun_rd_init(struct stun_rd *r, const uint8_t *p, size_t len)
{
	r->p = p;
	r->len = len;
	r->off = 0;
	r->err = false;
}

static inline size_t stun_rd_left(const struct stun_rd *r)
{
	return r->err ? 0 : r->len - r->off;
}

/* Claim n bytes; NULL (and err set) if they are not all there. */
static inline const uint8_t *stun_rd_take(struct stun_rd *r, size_t n)
{
	const uint8_t *q;

	if (r->err || n > r->len - r->off) {
		r->err = true;
		return NULL;
	}
	q = r->p + r->off;
	r->off += n;
	return q;
}

static inline uint8_t stun_rd_u8(struct stun_rd *r)
{
	const uint8_t *q = stun_rd_take(r, 1);

	return q ? q[0] : 0;
}

static inline uint16_t stun_rd_u16(struct stun_rd *r)
{
	const uint8_t *q = stun_rd_take(r, 2);

	return q ? (uint16_t)(q[0] << 8 | q[1]) : 0;
}

static inline uint32_t stun_rd_u32(struct stun_rd *r)
{
	const uint8_t *q = stun_rd_take(r, 4);

	if (!q)
		return 0;
	return (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
}

static inline uint64_t stun_rd_u64(struct stun_rd *r)
{
	uint64_t hi = stun_rd_u32(r);

	return hi << 32 | stun_rd_u32(r);
}

/* Big-endian stores for the builder (bounds are the builder's job). */
static inline void stun_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void stun_put32(uint8_t *p, uint32_t v)
{
	stun_put16(p, (uint16_t)(v >> 16));
	stun_put16(p + 2, (uint16_t)v);
}

static inline uint16_t stun_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t stun_get32(const uint8_t *p)
{
	return (uint32_t)stun_get16(p) << 16 | stun_get16(p + 2);
}

#endif
