/* txcache: recent responses for retransmitted requests (RFC 8489 s6.3.1). */
#include "txcache.h"

#include <stdlib.h>
#include <string.h>

#include "seeded_hash.h"

struct txkey {
	struct turn_5tuple ft;
	uint8_t tid[STUN_TID_LEN];
};

struct txentry {
	struct txkey key;
	double stored; /* 0 = empty */
	uint16_t len;
	uint8_t resp[TXCACHE_MAX_RESP];
};

struct txcache {
	uint64_t seed;
	uint32_t mask;
	struct txentry *e;
};

struct txcache *txcache_new(uint32_t entries)
{
	struct txcache *c = calloc(1, sizeof(*c));
	uint32_t n = seeded_hash_buckets(entries);

	if (!c)
		return NULL;
	c->e = calloc(n, sizeof(*c->e));
	if (!c->e) {
		free(c);
		return NULL;
	}
	c->mask = n - 1;
	c->seed = seeded_hash_seed();
	return c;
}

void txcache_free(struct txcache *c)
{
	if (!c)
		return;
	free(c->e);
	free(c);
}

static struct txentry *slot(struct txcache *c, const struct txkey *k)
{
	return &c->e[seeded_hash(c->seed, k, sizeof(*k)) & c->mask];
}

static void key_set(struct txkey *k, const struct turn_5tuple *ft, const uint8_t *tid)
{
	memset(k, 0, sizeof(*k));
	k->ft = *ft;
	memcpy(k->tid, tid, STUN_TID_LEN);
}

const uint8_t *txcache_get(struct txcache *c, const struct turn_5tuple *ft,
			   const uint8_t tid[STUN_TID_LEN], double now, size_t *len)
{
	struct txkey k;
	struct txentry *e;

	key_set(&k, ft, tid);
	e = slot(c, &k);
	if (!e->stored || now - e->stored > TXCACHE_TTL || memcmp(&e->key, &k, sizeof(k)))
		return NULL;
	*len = e->len;
	return e->resp;
}

void txcache_put(struct txcache *c, const struct turn_5tuple *ft,
		 const uint8_t tid[STUN_TID_LEN], const uint8_t *resp, size_t len,
		 double now)
{
	struct txkey k;
	struct txentry *e;

	if (len > TXCACHE_MAX_RESP)
		return;
	key_set(&k, ft, tid);
	e = slot(c, &k);
	e->key = k;
	e->stored = now > 0 ? now : 1e-9;
	e->len = (uint16_t)len;
	memcpy(e->resp, resp, len);
}
