/* relay_port: relayed transport addresses (RFC 8656 s7.2, s18.7, s18.10). */
#include "relay_port.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct relay_ip {
	stun_sockaddr addr;
	uint64_t *used; /* one bit per port of the range */
};

struct reservation {
	uint64_t token; /* 0 = slot free */
	double expires;
	uint32_t ip;
	uint16_t port;
};

struct relay_ports {
	pthread_mutex_t lock;
	struct relay_ip *ips;
	size_t n_ips;
	uint16_t min_port, max_port;
	uint32_t n_ports, in_use, rr;
	uint64_t rng;
	struct reservation *res;
	uint32_t n_res;
};

static uint64_t rng_next(struct relay_ports *rp)
{
	/* xorshift64*: spreads the starting point of the scan (RFC 6056). */
	rp->rng ^= rp->rng >> 12;
	rp->rng ^= rp->rng << 25;
	rp->rng ^= rp->rng >> 27;
	return rp->rng * 0x2545F4914F6CDD1Dull;
}

static bool bit_get(const uint64_t *bm, uint32_t i)
{
	return bm[i / 64] >> (i % 64) & 1;
}

static void bit_set(uint64_t *bm, uint32_t i, bool v)
{
	if (v)
		bm[i / 64] |= 1ull << (i % 64);
	else
		bm[i / 64] &= ~(1ull << (i % 64));
}

struct relay_ports *relay_ports_new(const stun_sockaddr *ips, size_t n_ips,
				    uint16_t min_port, uint16_t max_port,
				    uint32_t max_tokens, uint64_t seed)
{
	struct relay_ports *rp;
	size_t words;

	if (!n_ips || min_port == 0 || max_port < min_port)
		return NULL;
	rp = calloc(1, sizeof(*rp));
	if (!rp)
		return NULL;
	pthread_mutex_init(&rp->lock, NULL);
	rp->min_port = min_port;
	rp->max_port = max_port;
	rp->n_ports = (uint32_t)max_port - min_port + 1;
	words = (rp->n_ports + 63) / 64;
	rp->ips = calloc(n_ips, sizeof(*rp->ips));
	rp->res = calloc(max_tokens ? max_tokens : 1, sizeof(*rp->res));
	rp->n_res = max_tokens;
	if (!rp->ips || !rp->res)
		goto fail;
	rp->n_ips = n_ips;
	for (size_t i = 0; i < n_ips; i++) {
		rp->ips[i].addr = ips[i];
		rp->ips[i].used = calloc(words, sizeof(uint64_t));
		if (!rp->ips[i].used)
			goto fail;
	}
	if (!seed && getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		seed = (uint64_t)(uintptr_t)rp;
	rp->rng = seed | 1;
	return rp;
fail:
	relay_ports_free(rp);
	return NULL;
}

void relay_ports_free(struct relay_ports *rp)
{
	if (!rp)
		return;
	for (size_t i = 0; rp->ips && i < rp->n_ips; i++)
		free(rp->ips[i].used);
	free(rp->ips);
	free(rp->res);
	pthread_mutex_destroy(&rp->lock);
	free(rp);
}

bool relay_ports_has_family(const struct relay_ports *rp, int family)
{
	for (size_t i = 0; i < rp->n_ips; i++)
		if (rp->ips[i].addr.sa.sa_family == family)
			return true;
	return false;
}

static void addr_of(const struct relay_ports *rp, uint32_t ip, uint16_t port,
		    stun_sockaddr *out)
{
	*out = rp->ips[ip].addr;
	if (out->sa.sa_family == AF_INET)
		out->in4.sin_port = htons(port);
	else
		out->in6.sin6_port = htons(port);
}

/* Does offset off satisfy flags, with the bits it needs free? */
static bool port_fits(const struct relay_ports *rp, const uint64_t *bm, uint32_t off,
		      unsigned flags)
{
	uint32_t port = rp->min_port + off;

	if (bit_get(bm, off))
		return false;
	if ((flags & (RELAY_PORT_EVEN | RELAY_PORT_RESERVE_NEXT)) && (port & 1))
		return false;
	if (!(flags & RELAY_PORT_RESERVE_NEXT))
		return true;
	/* s7.2: N and N+1 on the same IP address, N even. */
	return off + 1 < rp->n_ports && !bit_get(bm, off + 1);
}

/* Scan one IP's range from a random point. Returns the offset or -1. */
static int32_t scan_ip(struct relay_ports *rp, const uint64_t *bm, unsigned flags)
{
	uint32_t start = (uint32_t)(rng_next(rp) % rp->n_ports);

	for (uint32_t i = 0; i < rp->n_ports; i++) {
		uint32_t off = (start + i) % rp->n_ports;

		if (bm[off / 64] == ~0ull && off % 64 == 0 && off + 64 <= rp->n_ports) {
			i += 63; /* a full word */
			continue;
		}
		if (port_fits(rp, bm, off, flags))
			return (int32_t)off;
	}
	return -1;
}

static struct reservation *res_free_slot(struct relay_ports *rp)
{
	for (uint32_t i = 0; i < rp->n_res; i++)
		if (!rp->res[i].token)
			return &rp->res[i];
	return NULL;
}

static uint64_t new_token(struct relay_ports *rp)
{
	uint64_t t = 0;

	if (getrandom(&t, sizeof(t), 0) != (ssize_t)sizeof(t))
		t = rng_next(rp);
	return t ? t : 1;
}

static void expire_locked(struct relay_ports *rp, double now)
{
	for (uint32_t i = 0; i < rp->n_res; i++) {
		struct reservation *r = &rp->res[i];

		if (!r->token || now < r->expires)
			continue;
		bit_set(rp->ips[r->ip].used, r->port - rp->min_port, false);
		rp->in_use--;
		r->token = 0;
	}
}

static int get_locked(struct relay_ports *rp, int family, unsigned flags, double now,
		      stun_sockaddr *out, uint64_t *token)
{
	struct reservation *slot = NULL;
	bool any = false;

	expire_locked(rp, now);
	if ((flags & RELAY_PORT_RESERVE_NEXT) && !(slot = res_free_slot(rp)))
		return -ENOBUFS;
	for (size_t k = 0; k < rp->n_ips; k++) {
		uint32_t ip = (uint32_t)((rp->rr + k) % rp->n_ips);
		int32_t off;

		if (rp->ips[ip].addr.sa.sa_family != family)
			continue;
		any = true;
		off = scan_ip(rp, rp->ips[ip].used, flags);
		if (off < 0)
			continue;
		rp->rr = ip + 1;
		bit_set(rp->ips[ip].used, (uint32_t)off, true);
		rp->in_use++;
		addr_of(rp, ip, (uint16_t)(rp->min_port + off), out);
		if (!slot)
			return 0;
		bit_set(rp->ips[ip].used, (uint32_t)off + 1, true);
		rp->in_use++;
		*slot = (struct reservation){ new_token(rp), now + RELAY_RESERVATION_HOLD, ip,
					      (uint16_t)(rp->min_port + off + 1) };
		*token = slot->token;
		return 0;
	}
	return any ? -ENOSPC : -EAFNOSUPPORT;
}

int relay_ports_get(struct relay_ports *rp, int family, unsigned flags, double now,
		    stun_sockaddr *out, uint64_t *token)
{
	int err;

	pthread_mutex_lock(&rp->lock);
	err = get_locked(rp, family, flags, now, out, token);
	pthread_mutex_unlock(&rp->lock);
	return err;
}

int relay_ports_redeem(struct relay_ports *rp, uint64_t token, double now,
		       stun_sockaddr *out)
{
	int err = -ENOENT;

	if (!token)
		return err;
	pthread_mutex_lock(&rp->lock);
	expire_locked(rp, now);
	for (uint32_t i = 0; i < rp->n_res; i++) {
		struct reservation *r = &rp->res[i];

		if (r->token != token)
			continue;
		/* The port stays marked used: it now belongs to the caller. */
		addr_of(rp, r->ip, r->port, out);
		r->token = 0;
		err = 0;
		break;
	}
	pthread_mutex_unlock(&rp->lock);
	return err;
}

static int find_ip(const struct relay_ports *rp, const stun_sockaddr *a)
{
	for (size_t i = 0; i < rp->n_ips; i++) {
		const stun_sockaddr *b = &rp->ips[i].addr;

		if (b->sa.sa_family != a->sa.sa_family)
			continue;
		if (a->sa.sa_family == AF_INET &&
		    b->in4.sin_addr.s_addr == a->in4.sin_addr.s_addr)
			return (int)i;
		if (a->sa.sa_family == AF_INET6 &&
		    !memcmp(&b->in6.sin6_addr, &a->in6.sin6_addr, 16))
			return (int)i;
	}
	return -1;
}

void relay_ports_put(struct relay_ports *rp, const stun_sockaddr *a)
{
	int ip = find_ip(rp, a);
	uint16_t port = ntohs(a->sa.sa_family == AF_INET ? a->in4.sin_port : a->in6.sin6_port);

	if (ip < 0 || port < rp->min_port || port > rp->max_port)
		return;
	pthread_mutex_lock(&rp->lock);
	if (bit_get(rp->ips[ip].used, port - rp->min_port)) {
		bit_set(rp->ips[ip].used, port - rp->min_port, false);
		rp->in_use--;
	}
	pthread_mutex_unlock(&rp->lock);
}

void relay_ports_expire(struct relay_ports *rp, double now)
{
	pthread_mutex_lock(&rp->lock);
	expire_locked(rp, now);
	pthread_mutex_unlock(&rp->lock);
}

uint32_t relay_ports_in_use(struct relay_ports *rp)
{
	uint32_t n;

	pthread_mutex_lock(&rp->lock);
	n = rp->in_use;
	pthread_mutex_unlock(&rp->lock);
	return n;
}
