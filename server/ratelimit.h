/* ratelimit: per-source-IP token buckets in a fixed per-worker table (no
 * allocation, no locks). A full table recycles the colliding slot, which
 * can only make the limit more lenient, never block a new source. */
#ifndef STUND_RATELIMIT_H
#define STUND_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "stun_msg.h"

#define RATELIMIT_SLOTS 4096

struct rl_bucket {
	uint8_t ip[16];
	uint8_t family;   /* 0 = empty */
	float tokens;
	double last;
};

struct ratelimit {
	struct rl_bucket b[RATELIMIT_SLOTS];
};

/* May a request from src's IP go through now? rate per second, burst of
 * one second's worth; rate 0 means unlimited. */
bool ratelimit_allow(struct ratelimit *rl, const stun_sockaddr *src, double now, uint32_t rate);

#endif
