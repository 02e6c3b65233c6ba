/* ratelimit: token buckets keyed by source IP. */
#include "ratelimit.h"

#include <string.h>

static const uint8_t *ip_of(const stun_sockaddr *a, uint8_t *family, size_t *len)
{
	if (a->sa.sa_family == AF_INET) {
		*family = 4;
		*len = 4;
		return (const uint8_t *)&a->in4.sin_addr;
	}
	*family = 6;
	*len = 16;
	return (const uint8_t *)&a->in6.sin6_addr;
}

static uint32_t hash_ip(const uint8_t *p, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

bool ratelimit_allow(struct ratelimit *rl, const stun_sockaddr *src, double now, uint32_t rate)
{
	struct rl_bucket *b;
	const uint8_t *ip;
	uint8_t family;
	size_t len;

	if (!rate)
		return true;
	ip = ip_of(src, &family, &len);
	b = &rl->b[hash_ip(ip, len) % RATELIMIT_SLOTS];
	if (b->family != family || memcmp(b->ip, ip, len)) {
		memset(b->ip, 0, sizeof(b->ip));
		memcpy(b->ip, ip, len);
		b->family = family;
		b->tokens = (float)rate;
		b->last = now;
	}
	b->tokens += (float)((now - b->last) * rate);
	if (b->tokens > (float)rate)
		b->tokens = (float)rate;
	b->last = now;
	if (b->tokens < 1.0f)
		return false;
	b->tokens -= 1.0f;
	return true;
}
