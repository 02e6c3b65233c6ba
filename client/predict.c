/* predict: port prediction for symmetric NATs (see predict.h). */
#include "predict.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define PORTS (65536u - PREDICT_PORT_MIN)

void predict_opts_default(struct predict_opts *o)
{
	*o = (struct predict_opts){ .enabled = true, .window = 8, .ttl = 0, .cross = true, .sockets = 256,
				    .pps = 1000, .packets = 3000, .ms = 5000 };
}

struct opt_key {
	const char *name;
	size_t off;
	unsigned min, max, scale;
	bool flag;                /* a bool field, 0 or 1 */
};

static const struct opt_key keys[] = {
	{ "window", offsetof(struct predict_opts, window), 1, PREDICT_MAX_WINDOW, 1, false },
	{ "ttl", offsetof(struct predict_opts, ttl), 0, 64, 1, false },
	{ "sockets", offsetof(struct predict_opts, sockets), 1, 1024, 1, false },
	{ "pps", offsetof(struct predict_opts, pps), 1, 10000, 1, false },
	{ "packets", offsetof(struct predict_opts, packets), 1, 100000, 1, false },
	{ "seconds", offsetof(struct predict_opts, ms), 1, 120, 1000, false },
	{ "cross", offsetof(struct predict_opts, cross), 0, 1, 1, true },
};

static int parse_pair(struct predict_opts *o, const char *kv, size_t len, char *err, size_t cap)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		size_t nl = strlen(keys[i].name);
		char *end;
		unsigned long v;

		if (len <= nl || strncmp(kv, keys[i].name, nl) || kv[nl] != '=')
			continue;
		v = strtoul(kv + nl + 1, &end, 10);
		if (end != kv + len || end == kv + nl + 1 || v < keys[i].min || v > keys[i].max) {
			snprintf(err, cap, "--predict %s takes %u-%u", keys[i].name, keys[i].min,
				 keys[i].max);
			return -EINVAL;
		}
		if (keys[i].flag)
			*(bool *)((char *)o + keys[i].off) = v != 0;
		else
			*(unsigned *)((char *)o + keys[i].off) = (unsigned)v * keys[i].scale;
		return 0;
	}
	snprintf(err, cap, "--predict: unknown \"%.*s\" (keys: window, ttl, sockets, pps, "
		 "packets, seconds, cross; or off)", (int)len, kv);
	return -EINVAL;
}

int predict_opts_parse(struct predict_opts *o, const char *spec, char *err, size_t cap)
{
	struct predict_opts t;

	predict_opts_default(&t);
	if (!strcmp(spec, "off")) {
		t.enabled = false;
		*o = t;
		return 0;
	}
	while (*spec) {
		size_t len = strcspn(spec, ",");
		if (parse_pair(&t, spec, len, err, cap) < 0)
			return -EINVAL;
		spec += len + (spec[len] == ',');
	}
	*o = t;
	return 0;
}

enum predict_alloc predict_classify(const uint16_t *ports, unsigned n, int *delta)
{
	int d;

	if (n < 2)
		return PREDICT_ALLOC_UNKNOWN;
	d = (int)ports[1] - (int)ports[0];
	for (unsigned i = 2; i < n; i++)
		if ((int)ports[i] - (int)ports[i - 1] != d)
			return PREDICT_ALLOC_RANDOM;
	if (!d)
		return PREDICT_ALLOC_EIM;
	if (d > PREDICT_MAX_DELTA || d < -PREDICT_MAX_DELTA)
		return PREDICT_ALLOC_RANDOM;
	*delta = d;
	return PREDICT_ALLOC_SEQUENTIAL;
}

const char *predict_alloc_str(enum predict_alloc a)
{
	switch (a) {
	case PREDICT_ALLOC_EIM: return "endpoint-independent";
	case PREDICT_ALLOC_SEQUENTIAL: return "sequential";
	case PREDICT_ALLOC_RANDOM: return "random";
	case PREDICT_ALLOC_UNKNOWN: break;
	}
	return "unknown";
}

enum predict_plan predict_choose(enum predict_alloc self, enum predict_alloc peer)
{
	if (self == PREDICT_ALLOC_SEQUENTIAL)
		return PREDICT_PLAN_WINDOW;
	if (self != PREDICT_ALLOC_RANDOM)
		return PREDICT_PLAN_NONE;
	/* random: only a peer with a stable mapping can be met by chance */
	return peer == PREDICT_ALLOC_RANDOM || peer == PREDICT_ALLOC_SEQUENTIAL
	       ? PREDICT_PLAN_RELAY : PREDICT_PLAN_BIRTHDAY;
}

static uint16_t wrap(long p)
{
	long span = PORTS;

	p = (p - PREDICT_PORT_MIN) % span;
	if (p < 0)
		p += span;
	return (uint16_t)(p + PREDICT_PORT_MIN);
}

unsigned predict_seq_ports(uint16_t last, int delta, unsigned window, uint16_t *out)
{
	if (!delta)
		return 0;
	if (window > PREDICT_MAX_WINDOW)
		window = PREDICT_MAX_WINDOW;
	for (unsigned k = 1; k <= window; k++)
		out[k - 1] = wrap((long)last + (long)delta * k);
	return window;
}

unsigned predict_cross_window(uint16_t self_last, int self_delta, unsigned self_gap,
			      uint16_t peer_last, int peer_delta, unsigned peer_gap,
			      unsigned window, uint16_t *dst, uint16_t *src)
{
	if (!self_delta || !peer_delta)
		return 0;
	if (window > PREDICT_MAX_WINDOW)
		window = PREDICT_MAX_WINDOW;
	for (unsigned i = 0; i < window; i++) {
		src[i] = wrap((long)self_last + (long)self_delta * (long)(self_gap + 1 + i));
		dst[i] = wrap((long)peer_last + (long)peer_delta * (long)(peer_gap + 1 + i));
	}
	return window;
}

unsigned predict_candidates(const stun_sockaddr *srflx, const stun_sockaddr *base,
			    const stun_sockaddr *server, uint16_t last, int delta,
			    unsigned window, struct ice_cand *out)
{
	uint16_t ports[PREDICT_MAX_WINDOW];
	unsigned n = predict_seq_ports(last, delta, window, ports);

	for (unsigned k = 0; k < n; k++) {
		struct ice_cand *c = &out[k];
		memset(c, 0, sizeof(*c));
		c->type = ICE_CAND_PREDICTED;
		c->component = 1;
		c->addr = *srflx;
		stun_sockaddr_set_port(&c->addr, ports[k]);
		c->base = *base;
		c->server = *server;
		/* RFC 8445 s5.1.2.1: local preference falls with each guess */
		ice_cand_finish(c, (uint16_t)(65535 - k));
		/* A foundation per guess: s5.1.1.3 knows no predicted type, and
		 * one guess succeeding says nothing of the others, so the
		 * frozen-pair logic (s6.1.2.6) must not check them one by one. */
		size_t fl = strnlen(c->foundation, ICE_FOUNDATION_MAX - 4);
		snprintf(c->foundation + fl, ICE_FOUNDATION_MAX - fl, "p%u", k);
	}
	return n;
}

unsigned predict_peer_window(const struct ice_cand *c, unsigned n, uint16_t *last, int *delta)
{
	const struct ice_cand *g[2] = { NULL, NULL };
	unsigned count = 0;
	long d;

	for (unsigned i = 0; i < n; i++) {
		if (c[i].type != ICE_CAND_PREDICTED ||
		    !strcmp(c[i].foundation, PREDICT_BIRTHDAY_FOUNDATION))
			continue;
		count++;
		if (!g[0] || c[i].priority > g[0]->priority) {
			g[1] = g[0];
			g[0] = &c[i];
		} else if (!g[1] || c[i].priority > g[1]->priority) {
			g[1] = &c[i];
		}
	}
	if (!count)
		return 0;
	d = g[1] ? (long)stun_sockaddr_port(&g[1]->addr) - (long)stun_sockaddr_port(&g[0]->addr) : 1;
	/* the window may wrap from 65535 to PREDICT_PORT_MIN */
	if (d > PREDICT_MAX_DELTA)
		d -= PORTS;
	else if (d < -PREDICT_MAX_DELTA)
		d += PORTS;
	if (!d || d > PREDICT_MAX_DELTA || d < -PREDICT_MAX_DELTA)
		return 0;
	*delta = (int)d;
	*last = wrap((long)stun_sockaddr_port(&g[0]->addr) - d);
	return count;
}

bool predict_is_predicted(const stun_sockaddr *a, const struct ice_cand *c, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (c[i].type == ICE_CAND_PREDICTED && stun_sockaddr_equal(a, &c[i].addr))
			return true;
	return false;
}

enum predict_alloc predict_peer_alloc(const struct ice_cand *c, unsigned n)
{
	enum predict_alloc a = PREDICT_ALLOC_UNKNOWN;

	for (unsigned i = 0; i < n; i++) {
		if (c[i].type != ICE_CAND_PREDICTED)
			continue;
		if (!strcmp(c[i].foundation, PREDICT_BIRTHDAY_FOUNDATION))
			return PREDICT_ALLOC_RANDOM;
		a = PREDICT_ALLOC_SEQUENTIAL;
	}
	return a;
}

static uint32_t gcd(uint32_t a, uint32_t b)
{
	while (b) {
		uint32_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

void predict_rand_init(struct predict_rand *r, uint64_t seed)
{
	/* splitmix64 for start and stride; a stride coprime to the range
	 * visits every port once per cycle */
	uint64_t z = seed + 0x9E3779B97F4A7C15ull;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	z ^= z >> 31;
	r->n = PORTS;
	r->pos = (uint32_t)(z % r->n);
	r->stride = (uint32_t)((z >> 32) % (r->n - 1)) + 1;
	while (gcd(r->stride, r->n) != 1)
		r->stride++;
	r->drawn = 0;
}

uint16_t predict_rand_port(struct predict_rand *r)
{
	uint16_t p;

	if (r->drawn >= r->n)
		return 0;
	p = (uint16_t)(r->pos + PREDICT_PORT_MIN);
	r->pos = (uint32_t)(((uint64_t)r->pos + r->stride) % r->n);
	r->drawn++;
	return p;
}

void predict_budget_init(struct predict_budget *b, const struct predict_opts *o,
			 uint64_t now_ms)
{
	*b = (struct predict_budget){ .pps = o->pps, .total = o->packets, .ms = o->ms,
				      .start_ms = now_ms };
}

bool predict_budget_done(const struct predict_budget *b, uint64_t now_ms)
{
	return b->sent >= b->total || now_ms - b->start_ms >= b->ms;
}

unsigned predict_budget_take(struct predict_budget *b, uint64_t now_ms)
{
	uint64_t allowed;
	unsigned n;

	if (predict_budget_done(b, now_ms))
		return 0;
	/* at most pps per second since the start, in whole packets */
	allowed = (now_ms - b->start_ms) * b->pps / 1000 + 1;
	if (allowed > b->total)
		allowed = b->total;
	n = allowed > b->sent ? (unsigned)(allowed - b->sent) : 0;
	b->sent += n;
	return n;
}

int predict_punch_low_ttl(int fd, const stun_sockaddr *dest, unsigned ttl,
			  const void *buf, size_t len)
{
	int old = 64, t = (int)ttl, err = 0;
	socklen_t ol = sizeof(old);

	if (dest->sa.sa_family != AF_INET)
		return -EAFNOSUPPORT;
	if (getsockopt(fd, IPPROTO_IP, IP_TTL, &old, &ol) < 0 ||
	    setsockopt(fd, IPPROTO_IP, IP_TTL, &t, sizeof(t)) < 0)
		return -errno;
	if (sendto(fd, buf, len, 0, &dest->sa, stun_sockaddr_len(dest)) < 0)
		err = -errno;
	if (setsockopt(fd, IPPROTO_IP, IP_TTL, &old, sizeof(old)) < 0 && !err)
		err = -errno;
	return err;
}
