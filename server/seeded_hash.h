/* seeded_hash: a keyed 64-bit hash for the server's tables, so that keys a
 * remote party chooses (addresses, transaction IDs) cannot be aimed at one
 * bucket without knowing the per-table seed. */
#ifndef STUND_SEEDED_HASH_H
#define STUND_SEEDED_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>

static inline uint64_t seeded_hash(uint64_t seed, const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = seed ^ (n * 0x9E3779B97F4A7C15ull);

	for (; n >= 8; b += 8, n -= 8) {
		uint64_t v;

		memcpy(&v, b, 8);
		h = (h ^ v) * 0xFF51AFD7ED558CCDull;
		h ^= h >> 32;
	}
	while (n--)
		h = (h ^ *b++) * 0x100000001B3ull;
	h ^= h >> 33;
	h *= 0xC4CEB9FE1A85EC53ull;
	h ^= h >> 33;
	return h;
}

static inline uint64_t seeded_hash_seed(void)
{
	uint64_t s = 0x6A09E667F3BCC908ull;

	if (getrandom(&s, sizeof(s), 0) != (ssize_t)sizeof(s))
		s ^= (uint64_t)(uintptr_t)&s;
	return s;
}

/* Smallest power of two >= n (at least 16). */
static inline uint32_t seeded_hash_buckets(uint32_t n)
{
	uint32_t b = 16;

	while (b < n && b < (1u << 30))
		b <<= 1;
	return b;
}

#endif
