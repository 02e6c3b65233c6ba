/* bench_stun: the few STUN wire helpers the Binding benchmarks share.
 *
 * Hand-written on purpose: the load generator must not trust the code under
 * test (proto/), and the bare responder must do the least work any STUN
 * server has to do, so both touch only the bytes they need. */
#ifndef BENCH_STUN_H
#define BENCH_STUN_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <zlib.h>

#define BS_HDR 20
#define BS_COOKIE 0x2112A442u
#define BS_BINDING_REQUEST 0x0001
#define BS_BINDING_SUCCESS 0x0101
#define BS_ATTR_XOR_MAPPED 0x0020
#define BS_ATTR_FINGERPRINT 0x8028
#define BS_FP_XOR 0x5354554Eu
#define BS_FP_LEN 8 /* attribute header + CRC-32 */

union bs_addr {
	struct sockaddr sa;
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;
	struct sockaddr_storage ss;
};

static inline uint16_t bs_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t bs_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void bs_put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

static inline void bs_put32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = (v >> 16) & 0xff;
	p[2] = (v >> 8) & 0xff;
	p[3] = v & 0xff;
}

static inline void bs_put64(uint8_t *p, uint64_t v)
{
	bs_put32(p, (uint32_t)(v >> 32));
	bs_put32(p + 4, (uint32_t)v);
}

static inline uint64_t bs_get64(const uint8_t *p)
{
	return (uint64_t)bs_get32(p) << 32 | bs_get32(p + 4);
}

static inline socklen_t bs_addr_len(const union bs_addr *a)
{
	return a->sa.sa_family == AF_INET6 ? sizeof(a->in6) : sizeof(a->in4);
}

/* "1.2.3.4:5" or "[::1]:5". Returns 0 or -1. */
static inline int bs_addr_parse(union bs_addr *a, const char *s)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	const char *h = s;
	size_t hl;

	if (!colon || colon == s)
		return -1;
	hl = (size_t)(colon - s);
	if (s[0] == '[') {
		if (hl < 2 || s[hl - 1] != ']')
			return -1;
		h = s + 1;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	long port = strtol(colon + 1, NULL, 10);
	if (port <= 0 || port > 65535)
		return -1;
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, host, &a->in4.sin_addr) == 1) {
		a->in4.sin_family = AF_INET;
		a->in4.sin_port = htons((uint16_t)port);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &a->in6.sin6_addr) == 1) {
		a->in6.sin6_family = AF_INET6;
		a->in6.sin6_port = htons((uint16_t)port);
		return 0;
	}
	return -1;
}

static inline char *bs_addr_str(const union bs_addr *a, char *buf, size_t cap)
{
	char ip[INET6_ADDRSTRLEN];

	if (a->sa.sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &a->in6.sin6_addr, ip, sizeof(ip));
		snprintf(buf, cap, "[%s]:%u", ip, ntohs(a->in6.sin6_port));
	} else {
		inet_ntop(AF_INET, &a->in4.sin_addr, ip, sizeof(ip));
		snprintf(buf, cap, "%s:%u", ip, ntohs(a->in4.sin_port));
	}
	return buf;
}

/* XOR-MAPPED-ADDRESS value (RFC 8489 s14.2): X-Port is the port XOR the
 * cookie's top 16 bits; X-Address is the IPv4 address XOR the cookie, or the
 * IPv6 address XOR cookie || transaction ID. Writes 8 or 20 bytes into v and
 * returns that length. msg is the message header (cookie + tid). */
static inline size_t bs_xor_addr_put(uint8_t *v, const union bs_addr *a, const uint8_t *msg)
{
	v[0] = 0;
	if (a->sa.sa_family == AF_INET6) {
		const uint8_t *ip = a->in6.sin6_addr.s6_addr;

		v[1] = 0x02;
		bs_put16(v + 2, ntohs(a->in6.sin6_port) ^ (BS_COOKIE >> 16));
		for (int i = 0; i < 16; i++)
			v[4 + i] = ip[i] ^ msg[4 + i];
		return 20;
	}
	v[1] = 0x01;
	bs_put16(v + 2, ntohs(a->in4.sin_port) ^ (BS_COOKIE >> 16));
	bs_put32(v + 4, ntohl(a->in4.sin_addr.s_addr) ^ BS_COOKIE);
	return 8;
}

/* Does the XOR-MAPPED-ADDRESS value v (len bytes) of message msg name a? */
static inline bool bs_xor_addr_is(const uint8_t *v, size_t len, const union bs_addr *a,
				  const uint8_t *msg)
{
	uint8_t want[20];
	size_t n = bs_xor_addr_put(want, a, msg);

	return len == n && memcmp(v, want, n) == 0;
}

/* CRC-32 of msg[0..len) XOR 0x5354554E (RFC 8489 s14.7). */
static inline uint32_t bs_fingerprint(const uint8_t *msg, size_t len)
{
	return (uint32_t)crc32(0L, msg, (uInt)len) ^ BS_FP_XOR;
}

/* Append FINGERPRINT to the message of total length *len (header length
 * field is updated first, as s14.7 requires it to cover the attribute). */
static inline void bs_add_fingerprint(uint8_t *msg, size_t *len)
{
	bs_put16(msg + 2, (uint16_t)(*len + BS_FP_LEN - BS_HDR));
	bs_put16(msg + *len, BS_ATTR_FINGERPRINT);
	bs_put16(msg + *len + 2, 4);
	bs_put32(msg + *len + 4, bs_fingerprint(msg, *len));
	*len += BS_FP_LEN;
}

/* Walk the attributes of a message whose header passed bs_header_ok().
 * Finds the first attribute of type want (*val, *vlen; *val stays NULL when
 * absent) and the offset of the last attribute (*last, 0 when none).
 * Returns 0, or -1 when an attribute runs past the end (RFC 8489 s14:
 * values are padded to a multiple of 4). */
static inline int bs_attr_walk(const uint8_t *msg, size_t len, uint16_t want,
			       const uint8_t **val, size_t *vlen, size_t *last)
{
	size_t off = BS_HDR;

	*val = NULL;
	*vlen = 0;
	*last = 0;
	while (off < len) {
		if (len - off < 4)
			return -1;
		size_t l = bs_get16(msg + off + 2);
		size_t padded = (l + 3) & ~(size_t)3;
		if (len - off - 4 < padded)
			return -1;
		if (!*val && bs_get16(msg + off) == want) {
			*val = msg + off + 4;
			*vlen = l;
		}
		*last = off;
		off += 4 + padded;
	}
	return 0;
}

/* Is the attribute at offset last a well-formed FINGERPRINT (s14.7: it is
 * the last attribute)? The caller verifies its value with bs_fingerprint_ok(). */
static inline bool bs_is_fingerprint(const uint8_t *msg, size_t len, size_t last)
{
	return last && last + BS_FP_LEN == len &&
	       bs_get16(msg + last) == BS_ATTR_FINGERPRINT && bs_get16(msg + last + 2) == 4;
}

static inline bool bs_fingerprint_ok(const uint8_t *msg, size_t len)
{
	return bs_get32(msg + len - 4) == bs_fingerprint(msg, len - BS_FP_LEN);
}

/* The STUN header checks of RFC 8489 s6.3: top two bits zero, cookie,
 * length a multiple of 4 that matches the datagram. */
static inline bool bs_header_ok(const uint8_t *msg, size_t len)
{
	if (len < BS_HDR || (msg[0] & 0xC0))
		return false;
	if (bs_get32(msg + 4) != BS_COOKIE)
		return false;
	size_t alen = bs_get16(msg + 2);
	return (alen & 3) == 0 && alen + BS_HDR == len;
}

#endif
