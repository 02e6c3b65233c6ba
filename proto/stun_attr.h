/* stun_attr: the attribute table (private to proto/). One row per known
 * attribute type: name, length bounds, kind and where the value lives in
 * struct stun_msg. Decoding, encoding, length checks and the collection of
 * unknown comprehension-required types all come from this one table. */
#ifndef NATPROTO_STUN_ATTR_H
#define NATPROTO_STUN_ATTR_H

#include "stun_msg.h"
#include "stun_rd.h"

enum stun_attr_kind {
	STUN_AK_ADDR,       /* stun_sockaddr, plain (s14.1) */
	STUN_AK_XADDR,      /* stun_sockaddr, XOR'ed (s14.2) */
	STUN_AK_XADDR_LIST, /* array of XOR'ed addresses + count */
	STUN_AK_BYTES,      /* struct stun_bytes view */
	STUN_AK_U8,         /* one byte + 3 reserved */
	STUN_AK_U16,        /* two bytes + 2 reserved */
	STUN_AK_U32,
	STUN_AK_U64,
	STUN_AK_FLAG,       /* empty value */
	STUN_AK_EVEN_PORT,
	STUN_AK_ERROR,
	STUN_AK_ADDR_ERROR,
	STUN_AK_UNKNOWN,
	STUN_AK_PW_ALGS,
	STUN_AK_PW_ALG,
	STUN_AK_ICMP,
};

struct stun_attr_def {
	uint16_t type;
	uint16_t min, max;  /* bounds of the value length (RFC limits) */
	uint8_t kind;       /* enum stun_attr_kind */
	uint8_t cap;        /* lists: capacity of the array */
	uint16_t off;       /* offsetof(struct stun_msg, field) */
	uint16_t cnt_off;   /* lists: offsetof the uint8_t count */
	const char *name;
};

/* The row for a wire type, or NULL if this codec does not know it. */
const struct stun_attr_def *stun_attr_find(uint16_t type);
/* Row index: the attribute's bit in stun_msg.present. */
unsigned stun_attr_bit(const struct stun_attr_def *d);
/* Check the length bounds and decode val[0..len) into m. */
int stun_attr_decode(struct stun_msg *m, const struct stun_attr_def *d,
		     const uint8_t *val, uint16_t len);
/* Re-encode attribute type from the decoded m (all entries of a list). */
void stun_attr_encode(struct stun_builder *b, const struct stun_msg *m, uint16_t type);
/* Number of rows and row i (for tests that walk every attribute). */
size_t stun_attr_count(void);
const struct stun_attr_def *stun_attr_at(size_t i);

/* HMAC (mbedtls md type) over msg[0..off) with the header's length field
 * replaced by len (RFC 8489 s14.5/s14.6). Shared by verify and build. */
int stun_hmac_msg(int md_type, const uint8_t *key, size_t keylen, const uint8_t *msg,
		  size_t off, size_t len, uint8_t *out);

#endif
