/* txcache: recent responses by (5-tuple, transaction ID), so that a
 * retransmitted request gets the same answer as the original (RFC 8489
 * s6.3.1 / RFC 8656 s7.2 note): a direct-mapped table sized at start, the
 * newer entry wins a collision; entries older than the ttl do not match. */
#ifndef STUND_TXCACHE_H
#define STUND_TXCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "stun_msg.h"
#include "turn_alloc.h"

#define TXCACHE_TTL 40.0      /* RFC 8489 s6.3.1: 40 seconds */
#define TXCACHE_MAX_RESP 320  /* longer responses are not cached */

struct txcache;

struct txcache *txcache_new(uint32_t entries);
void txcache_free(struct txcache *c);

/* The cached response to (ft, tid), or NULL. *len receives its length. */
const uint8_t *txcache_get(struct txcache *c, const struct turn_5tuple *ft,
			   const uint8_t tid[STUN_TID_LEN], double now, size_t *len);
/* Remember resp as the answer to (ft, tid). */
void txcache_put(struct txcache *c, const struct turn_5tuple *ft,
		 const uint8_t tid[STUN_TID_LEN], const uint8_t *resp, size_t len,
		 double now);

#endif
