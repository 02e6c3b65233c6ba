/* turn_perm: permissions (RFC 8656 s9) and channel bindings (s12). */
#include "turn_perm.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "turn_frame.h"

struct turn_perm_pool {
	struct pool perms, chans;
	uint32_t live_perms, bound_chans;
	uint16_t max_per_alloc;
	uint16_t chan_max;
};

void turn_addr_key_set(struct turn_addr_key *k, const stun_sockaddr *a)
{
	memset(k, 0, sizeof(*k));
	k->family = (uint8_t)a->sa.sa_family;
	if (a->sa.sa_family == AF_INET) {
		k->port = ntohs(a->in4.sin_port);
		memcpy(k->ip, &a->in4.sin_addr, 4);
	} else {
		k->port = ntohs(a->in6.sin6_port);
		memcpy(k->ip, &a->in6.sin6_addr, 16);
	}
}

void turn_addr_key_to_sa(const struct turn_addr_key *k, stun_sockaddr *a)
{
	memset(a, 0, sizeof(*a));
	if (k->family == AF_INET) {
		a->in4.sin_family = AF_INET;
		a->in4.sin_port = htons(k->port);
		memcpy(&a->in4.sin_addr, k->ip, 4);
		return;
	}
	a->in6.sin6_family = AF_INET6;
	a->in6.sin6_port = htons(k->port);
	memcpy(&a->in6.sin6_addr, k->ip, 16);
}

bool turn_addr_key_ip_eq(const struct turn_addr_key *a, const struct turn_addr_key *b)
{
	return a->family == b->family && !memcmp(a->ip, b->ip, sizeof(a->ip));
}

bool turn_addr_key_eq(const struct turn_addr_key *a, const struct turn_addr_key *b)
{
	return turn_addr_key_ip_eq(a, b) && a->port == b->port;
}

struct turn_perm_pool *turn_perm_pool_new(uint32_t n_perms, uint32_t n_chans,
					  uint16_t max_per_alloc)
{
	struct turn_perm_pool *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	if (pool_init(&p->perms, n_perms, sizeof(struct turn_perm)) ||
	    pool_init(&p->chans, n_chans, sizeof(struct turn_chan))) {
		turn_perm_pool_free(p);
		return NULL;
	}
	p->max_per_alloc = max_per_alloc;
	p->chan_max = TURN_CHANNEL_MAX;
	return p;
}

void turn_perm_pool_free(struct turn_perm_pool *p)
{
	if (!p)
		return;
	pool_destroy(&p->perms);
	pool_destroy(&p->chans);
	free(p);
}

void turn_perm_pool_set_chan_max(struct turn_perm_pool *p, uint16_t max)
{
	p->chan_max = max;
}

uint32_t turn_perm_pool_perms(const struct turn_perm_pool *p)
{
	return p->live_perms;
}

uint32_t turn_perm_pool_chans(const struct turn_perm_pool *p)
{
	return p->bound_chans;
}

static struct turn_perm *perm_find(const struct turn_perm_set *s,
				   const struct turn_addr_key *peer)
{
	for (struct turn_perm *e = s->perms; e; e = e->next)
		if (turn_addr_key_ip_eq(&e->peer, peer))
			return e;
	return NULL;
}

/* Can a new permission for peer be installed (or an old one refreshed)? */
static bool perm_room(const struct turn_perm_pool *p, const struct turn_perm_set *s,
		      const struct turn_addr_key *peer)
{
	if (perm_find(s, peer))
		return true;
	return !pool_full(&p->perms) && s->n_perms < p->max_per_alloc;
}

int turn_perm_install(struct turn_perm_pool *p, struct turn_perm_set *s,
		      const struct turn_addr_key *peer, double now)
{
	struct turn_perm *e = perm_find(s, peer);

	if (!e) {
		if (!perm_room(p, s, peer))
			return -ENOSPC;
		e = pool_get(&p->perms);
		e->next = s->perms;
		s->perms = e;
		s->n_perms++;
		p->live_perms++;
		e->peer = *peer;
		e->peer.port = 0;
	}
	/* RFC 8656 s9: created or reset to Permission Lifetime. */
	e->expires = now + TURN_PERMISSION_LIFETIME;
	return 0;
}

bool turn_perm_check(const struct turn_perm_set *s, const struct turn_addr_key *peer,
		     double now)
{
	const struct turn_perm *e = perm_find(s, peer);

	return e && now < e->expires;
}

/* Any entry, bound or quarantined, holding number or peer. */
static struct turn_chan *chan_find_number(const struct turn_perm_set *s, uint16_t number)
{
	for (struct turn_chan *c = s->chans; c; c = c->next)
		if (c->number == number)
			return c;
	return NULL;
}

static struct turn_chan *chan_find_peer(const struct turn_perm_set *s,
					const struct turn_addr_key *peer)
{
	for (struct turn_chan *c = s->chans; c; c = c->next)
		if (turn_addr_key_eq(&c->peer, peer))
			return c;
	return NULL;
}

/* s12: a quarantined channel counts as held until its 5 minutes end. */
static bool chan_held(const struct turn_chan *c, double now)
{
	return now < c->expires + TURN_CHANNEL_QUARANTINE;
}

/* RFC 8656 s12.2: the number is not bound to a different transport address
 * and the address is not bound to a different number; s12 extends both
 * rules over the 5 minutes after expiry. Returns the entry to refresh. */
static int chan_check(const struct turn_perm_pool *p, const struct turn_perm_set *s,
		      uint16_t number,
		      const struct turn_addr_key *peer, double now, struct turn_chan **out)
{
	struct turn_chan *by_num = chan_find_number(s, number);
	struct turn_chan *by_peer = chan_find_peer(s, peer);

	if (number < TURN_CHANNEL_MIN || number > p->chan_max)
		return -EINVAL;
	if (by_num && by_num != by_peer && chan_held(by_num, now))
		return -EINVAL;
	if (by_peer && by_peer != by_num && chan_held(by_peer, now))
		return -EINVAL;
	*out = by_num == by_peer ? by_num : NULL;
	return 0;
}

static void chan_unlink(struct turn_perm_pool *p, struct turn_perm_set *s,
			struct turn_chan *c)
{
	for (struct turn_chan **pp = &s->chans; *pp; pp = &(*pp)->next) {
		if (*pp != c)
			continue;
		*pp = c->next;
		if (!c->quarantined)
			p->bound_chans--;
		pool_put(&p->chans, c);
		s->n_chans--;
		return;
	}
}

/* Entries past their quarantine may linger until the next sweep; free them
 * now so they neither block nor take room. */
static void chan_reap(struct turn_perm_pool *p, struct turn_perm_set *s,
		      uint16_t number, const struct turn_addr_key *peer, double now)
{
	struct turn_chan *c = chan_find_number(s, number);

	if (c && !chan_held(c, now))
		chan_unlink(p, s, c);
	c = chan_find_peer(s, peer);
	if (c && !chan_held(c, now))
		chan_unlink(p, s, c);
}

static struct turn_chan *chan_take(struct turn_perm_pool *p, struct turn_perm_set *s)
{
	struct turn_chan *c = pool_get(&p->chans);

	c->next = s->chans;
	s->chans = c;
	s->n_chans++;
	c->quarantined = true; /* counted as bound by the caller */
	return c;
}

int turn_chan_bind(struct turn_perm_pool *p, struct turn_perm_set *s,
		   uint16_t number, const struct turn_addr_key *peer, double now)
{
	struct turn_chan *c = NULL;
	int err;

	chan_reap(p, s, number, peer, now);
	err = chan_check(p, s, number, peer, now, &c);
	if (err)
		return err;
	if (!c && (pool_full(&p->chans) || s->n_chans >= p->max_per_alloc))
		return -ENOSPC;
	if (!perm_room(p, s, peer))
		return -ENOSPC;
	if (!c) {
		c = chan_take(p, s);
		c->number = number;
		c->peer = *peer;
	}
	if (c->quarantined) {
		c->quarantined = false;
		p->bound_chans++;
	}
	c->expires = now + TURN_CHANNEL_LIFETIME;
	/* s12.2: also installs or refreshes the permission; room checked. */
	return turn_perm_install(p, s, peer, now);
}

const struct turn_chan *turn_chan_by_number(const struct turn_perm_set *s,
					    uint16_t number, double now)
{
	const struct turn_chan *c = chan_find_number(s, number);

	return c && now < c->expires ? c : NULL;
}

const struct turn_chan *turn_chan_by_peer(const struct turn_perm_set *s,
					  const struct turn_addr_key *peer, double now)
{
	const struct turn_chan *c = chan_find_peer(s, peer);

	return c && now < c->expires ? c : NULL;
}

static double sweep_perms(struct turn_perm_pool *p, struct turn_perm_set *s, double now)
{
	double next = INFINITY;
	struct turn_perm **pp = &s->perms;

	while (*pp) {
		struct turn_perm *e = *pp;

		if (now < e->expires) {
			next = fmin(next, e->expires);
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		pool_put(&p->perms, e);
		s->n_perms--;
		p->live_perms--;
	}
	return next;
}

static double sweep_chans(struct turn_perm_pool *p, struct turn_perm_set *s, double now)
{
	double next = INFINITY;
	struct turn_chan *c = s->chans, *n;

	for (; c; c = n) {
		n = c->next;
		if (!chan_held(c, now)) {
			chan_unlink(p, s, c);
			continue;
		}
		if (!c->quarantined && now >= c->expires) {
			c->quarantined = true;
			p->bound_chans--;
		}
		next = fmin(next, c->quarantined ? c->expires + TURN_CHANNEL_QUARANTINE
						 : c->expires);
	}
	return next;
}

double turn_perm_sweep(struct turn_perm_pool *p, struct turn_perm_set *s, double now)
{
	double a = sweep_perms(p, s, now);
	double b = sweep_chans(p, s, now);

	return fmin(a, b);
}

void turn_perm_clear(struct turn_perm_pool *p, struct turn_perm_set *s)
{
	while (s->perms) {
		struct turn_perm *e = s->perms;

		s->perms = e->next;
		pool_put(&p->perms, e);
		p->live_perms--;
	}
	while (s->chans)
		chan_unlink(p, s, s->chans);
	s->n_perms = 0;
	s->n_chans = 0;
}
