/* rto_cache: RTO per server (see rto_cache.h). */
#include "rto_cache.h"

#include <string.h>

void rto_cache_init(struct rto_cache *c, unsigned floor_ms)
{
	memset(c, 0, sizeof(*c));
	c->floor_ms = floor_ms;
}

static bool same_ip(const stun_sockaddr *a, const stun_sockaddr *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	if (a->sa.sa_family == AF_INET)
		return a->in4.sin_addr.s_addr == b->in4.sin_addr.s_addr;
	if (a->sa.sa_family == AF_INET6)
		return !memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, sizeof(a->in6.sin6_addr));
	return false;
}

static bool fresh(const struct rto_entry *e, double now)
{
	return e->used && now - e->last <= RTO_CACHE_STALE_S;
}

static struct rto_entry *find(const struct rto_cache *c, const stun_sockaddr *server)
{
	for (unsigned i = 0; i < RTO_CACHE_SLOTS; i++)
		if (c->e[i].used && same_ip(&c->e[i].ip, server))
			return (struct rto_entry *)&c->e[i];
	return NULL;
}

unsigned rto_cache_get(const struct rto_cache *c, const stun_sockaddr *server, double now,
		       unsigned dflt)
{
	const struct rto_entry *e = find(c, server);

	return e && fresh(e, now) ? e->rto_ms : dflt;
}

/* A slot for server: its own, a stale or free one, else the oldest. */
static struct rto_entry *slot(struct rto_cache *c, const stun_sockaddr *server, double now)
{
	struct rto_entry *e = find(c, server), *old = &c->e[0];

	if (e && fresh(e, now))
		return e;
	if (!e) {
		for (unsigned i = 0; i < RTO_CACHE_SLOTS; i++) {
			if (!fresh(&c->e[i], now)) {
				e = &c->e[i];
				break;
			}
			if (c->e[i].last < old->last)
				old = &c->e[i];
		}
	}
	if (!e)
		e = old;
	memset(e, 0, sizeof(*e));
	e->ip = *server;
	return e;
}

static unsigned clamp(const struct rto_cache *c, double ms)
{
	if (ms < c->floor_ms)
		return c->floor_ms;
	return ms > RTO_CACHE_MAX_MS ? RTO_CACHE_MAX_MS : (unsigned)(ms + 0.5);
}

void rto_cache_done(struct rto_cache *c, const stun_sockaddr *server, double now,
		    unsigned sends, unsigned rtt_ms, unsigned last_rto_ms)
{
	struct rto_entry *e = slot(c, server, now);
	bool first = !e->used;

	e->used = true;
	e->last = now;
	if (sends != 1) {
		/* Karn: no sample; RFC 6298 (5.5): the backed-off RTO stays */
		if (last_rto_ms > e->rto_ms)
			e->rto_ms = clamp(c, last_rto_ms);
		else if (first)
			e->rto_ms = c->floor_ms;
		return;
	}
	double r = rtt_ms;
	if (first || e->srtt <= 0) { /* RFC 6298 (2.2) */
		e->srtt = r;
		e->rttvar = r / 2;
	} else { /* (2.3), alpha 1/8, beta 1/4 */
		double d = e->srtt > r ? e->srtt - r : r - e->srtt;
		e->rttvar = 0.75 * e->rttvar + 0.25 * d;
		e->srtt = 0.875 * e->srtt + 0.125 * r;
	}
	/* RTO = SRTT + max(G, K * RTTVAR), G 1 ms, K 4 */
	e->rto_ms = clamp(c, e->srtt + (4 * e->rttvar > 1 ? 4 * e->rttvar : 1));
}
