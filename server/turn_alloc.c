/* turn_alloc: allocations (RFC 8656 s6-s8), quotas (s5, s7.2). */
#include "turn_alloc.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "seeded_hash.h"

#define ALIGN16(n) (((n) + 15) & ~(size_t)15)

/* ---- quotas ---------------------------------------------------------- */

struct turn_user {
	struct turn_user *next;
	uint32_t count;
	uint16_t len;
	char name[TURN_MAX_USERNAME];
};

struct turn_quota {
	pthread_mutex_t lock;
	uint32_t total_max, per_user_max, total;
	uint64_t seed;
	uint32_t mask;
	struct turn_user **buckets;
	struct pool users;
	struct turn_user anon; /* "" : counted in the total only */
};

struct turn_quota *turn_quota_new(uint32_t total, uint32_t per_user, uint32_t max_users)
{
	struct turn_quota *q = calloc(1, sizeof(*q));
	uint32_t nb = seeded_hash_buckets(max_users * 2);

	if (!q)
		return NULL;
	q->buckets = calloc(nb, sizeof(*q->buckets));
	if (!q->buckets || pool_init(&q->users, max_users, sizeof(struct turn_user))) {
		free(q->buckets);
		free(q);
		return NULL;
	}
	pthread_mutex_init(&q->lock, NULL);
	q->mask = nb - 1;
	q->seed = seeded_hash_seed();
	q->total_max = total;
	q->per_user_max = per_user;
	return q;
}

void turn_quota_free(struct turn_quota *q)
{
	if (!q)
		return;
	pthread_mutex_destroy(&q->lock);
	free(q->buckets);
	pool_destroy(&q->users);
	free(q);
}

static struct turn_user **user_slot(struct turn_quota *q, const char *name, size_t len)
{
	struct turn_user **pp = &q->buckets[seeded_hash(q->seed, name, len) & q->mask];

	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->len == len && !memcmp((*pp)->name, name, len))
			break;
	return pp;
}

static int quota_take_locked(struct turn_quota *q, const char *name, size_t len,
			     struct turn_user **out)
{
	struct turn_user **pp, *u;

	if (q->total_max && q->total >= q->total_max)
		return -EDQUOT;
	if (!len) {
		*out = &q->anon;
		return 0;
	}
	if (len >= TURN_MAX_USERNAME)
		return -EINVAL;
	pp = user_slot(q, name, len);
	u = *pp;
	if (u) {
		if (q->per_user_max && u->count >= q->per_user_max)
			return -EDQUOT;
		*out = u;
		return 0;
	}
	u = pool_get(&q->users);
	if (!u)
		return -ENOSPC;
	memcpy(u->name, name, len);
	u->len = (uint16_t)len;
	*pp = u;
	*out = u;
	return 0;
}

int turn_quota_take(struct turn_quota *q, const char *user, size_t len,
		    struct turn_user **out)
{
	struct turn_user *u = NULL;
	int err;

	pthread_mutex_lock(&q->lock);
	err = quota_take_locked(q, user, len, &u);
	if (!err) {
		u->count++;
		q->total++;
		*out = u;
	}
	pthread_mutex_unlock(&q->lock);
	return err;
}

void turn_quota_put(struct turn_quota *q, struct turn_user *u)
{
	pthread_mutex_lock(&q->lock);
	q->total--;
	if (--u->count == 0 && u != &q->anon) {
		struct turn_user **pp = user_slot(q, u->name, u->len);

		*pp = u->next;
		pool_put(&q->users, u);
	}
	pthread_mutex_unlock(&q->lock);
}

void turn_quota_set_limits(struct turn_quota *q, uint32_t total, uint32_t per_user)
{
	pthread_mutex_lock(&q->lock);
	q->total_max = total;
	q->per_user_max = per_user;
	pthread_mutex_unlock(&q->lock);
}

const char *turn_user_name(const struct turn_user *u, size_t *len)
{
	*len = u->len;
	return u->name;
}

uint32_t turn_quota_total(struct turn_quota *q)
{
	uint32_t n;

	pthread_mutex_lock(&q->lock);
	n = q->total;
	pthread_mutex_unlock(&q->lock);
	return n;
}

/* ---- the table ------------------------------------------------------- */

struct turn_table {
	struct turn_table_cfg cfg;
	struct turn_quota *quota; /* borrowed */
	struct turn_perm_pool *perms;
	uint64_t seed;
	uint32_t mask;
	struct turn_alloc **by_ft;
	struct turn_rel_node **by_rel;
	struct pool allocs;
	struct turn_alloc **heap;
	uint32_t n_heap, count;
};

void turn_5tuple_set(struct turn_5tuple *t, uint8_t proto, const stun_sockaddr *client,
		     const stun_sockaddr *server)
{
	memset(t, 0, sizeof(*t));
	t->proto = proto;
	turn_addr_key_set(&t->client, client);
	turn_addr_key_set(&t->server, server);
}

void *turn_alloc_ext(struct turn_alloc *a)
{
	return (uint8_t *)a + ALIGN16(sizeof(*a));
}

struct turn_alloc *turn_alloc_from_ext(void *ext)
{
	return (struct turn_alloc *)((uint8_t *)ext - ALIGN16(sizeof(struct turn_alloc)));
}

struct turn_perm_pool *turn_table_perms(struct turn_table *t)
{
	return t->perms;
}

uint32_t turn_table_count(const struct turn_table *t)
{
	return t->count;
}

static int table_alloc_mem(struct turn_table *t)
{
	uint32_t cap = t->cfg.capacity, nb = seeded_hash_buckets(cap * 2);

	if (pool_init(&t->allocs, cap, ALIGN16(sizeof(struct turn_alloc)) +
		      ALIGN16(t->cfg.ext_size)))
		return -ENOMEM;
	t->heap = calloc(cap ? cap : 1, sizeof(*t->heap));
	t->by_ft = calloc(nb, sizeof(*t->by_ft));
	t->by_rel = calloc(nb, sizeof(*t->by_rel));
	t->perms = turn_perm_pool_new(t->cfg.perms, t->cfg.chans, t->cfg.max_per_alloc);
	if (!t->heap || !t->by_ft || !t->by_rel || !t->perms)
		return -ENOMEM;
	t->mask = nb - 1;
	return 0;
}

struct turn_table *turn_table_new(const struct turn_table_cfg *cfg, struct turn_quota *quota)
{
	struct turn_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->cfg = *cfg;
	if (!t->cfg.default_lifetime)
		t->cfg.default_lifetime = TURN_DEFAULT_LIFETIME;
	if (t->cfg.max_lifetime < t->cfg.default_lifetime)
		t->cfg.max_lifetime = t->cfg.default_lifetime;
	t->quota = quota;
	t->seed = seeded_hash_seed();
	if (table_alloc_mem(t)) {
		turn_table_free(t);
		return NULL;
	}
	return t;
}

void turn_table_free(struct turn_table *t)
{
	if (!t)
		return;
	while (t->perms && t->n_heap)
		turn_alloc_free(t, t->heap[0]);
	for (uint32_t i = 0; t->by_ft && i <= t->mask; i++)
		while (t->by_ft[i])
			turn_alloc_free(t, t->by_ft[i]);
	turn_perm_pool_free(t->perms);
	free(t->by_ft);
	free(t->by_rel);
	free(t->heap);
	pool_destroy(&t->allocs);
	free(t);
}

void turn_table_set_max_lifetime(struct turn_table *t, uint32_t max_lifetime)
{
	t->cfg.max_lifetime = max_lifetime > t->cfg.default_lifetime ? max_lifetime
								       : t->cfg.default_lifetime;
}

uint32_t turn_table_lifetime(const struct turn_table *t, bool has_lifetime, uint32_t asked)
{
	uint32_t v;

	if (!has_lifetime)
		return t->cfg.default_lifetime;
	if (asked == 0)
		return 0; /* s8.2: desired lifetime zero deletes */
	/* s7.2 / s8.2: min(asked, max); if not above the default, the default. */
	v = asked < t->cfg.max_lifetime ? asked : t->cfg.max_lifetime;
	return v > t->cfg.default_lifetime ? v : t->cfg.default_lifetime;
}

/* ---- hashing ---------------------------------------------------------- */

static struct turn_alloc **ft_slot(const struct turn_table *t, const struct turn_5tuple *ft)
{
	return &t->by_ft[seeded_hash(t->seed, ft, sizeof(*ft)) & t->mask];
}

static struct turn_rel_node **rel_slot(const struct turn_table *t,
				       const struct turn_addr_key *k)
{
	return &t->by_rel[seeded_hash(t->seed, k, sizeof(*k)) & t->mask];
}

struct turn_alloc *turn_alloc_find(const struct turn_table *t, const struct turn_5tuple *ft)
{
	struct turn_alloc *a = *ft_slot(t, ft);

	while (a && memcmp(&a->ft, ft, sizeof(*ft)))
		a = a->next_ft;
	return a;
}

struct turn_alloc *turn_alloc_find_relayed(const struct turn_table *t,
					   const struct turn_addr_key *relayed)
{
	const struct turn_rel_node *n = *rel_slot(t, relayed);

	while (n && memcmp(n->key, relayed, sizeof(*relayed)))
		n = n->next;
	return n ? n->a : NULL;
}

static void ft_unlink(struct turn_table *t, struct turn_alloc *a)
{
	for (struct turn_alloc **pp = ft_slot(t, &a->ft); *pp; pp = &(*pp)->next_ft) {
		if (*pp == a) {
			*pp = a->next_ft;
			return;
		}
	}
}

static void rel_unlink(struct turn_table *t, struct turn_alloc *a)
{
	for (int i = 0; i < a->n_relayed; i++) {
		struct turn_rel_node **pp = rel_slot(t, &a->relayed[i]);

		while (*pp && *pp != &a->rel_node[i])
			pp = &(*pp)->next;
		if (*pp)
			*pp = a->rel_node[i].next;
	}
}

/* ---- the heap of next events ------------------------------------------ */

static void heap_set(struct turn_table *t, uint32_t i, struct turn_alloc *a)
{
	t->heap[i] = a;
	a->heap_idx = i;
}

static void heap_up(struct turn_table *t, uint32_t i)
{
	struct turn_alloc *a = t->heap[i];

	while (i > 0) {
		uint32_t p = (i - 1) / 2;

		if (t->heap[p]->next_event <= a->next_event)
			break;
		heap_set(t, i, t->heap[p]);
		i = p;
	}
	heap_set(t, i, a);
}

static void heap_down(struct turn_table *t, uint32_t i)
{
	struct turn_alloc *a = t->heap[i];

	for (;;) {
		uint32_t c = 2 * i + 1;

		if (c >= t->n_heap)
			break;
		if (c + 1 < t->n_heap && t->heap[c + 1]->next_event < t->heap[c]->next_event)
			c++;
		if (a->next_event <= t->heap[c]->next_event)
			break;
		heap_set(t, i, t->heap[c]);
		i = c;
	}
	heap_set(t, i, a);
}

static void heap_fix(struct turn_table *t, struct turn_alloc *a)
{
	heap_up(t, a->heap_idx);
	heap_down(t, a->heap_idx);
}

static void heap_remove(struct turn_table *t, struct turn_alloc *a)
{
	uint32_t i = a->heap_idx;
	struct turn_alloc *last = t->heap[--t->n_heap];

	if (last == a)
		return;
	heap_set(t, i, last);
	heap_fix(t, last);
}

/* ---- allocations ------------------------------------------------------ */

int turn_alloc_new(struct turn_table *t, const struct turn_5tuple *ft, const char *user,
		   size_t user_len, struct turn_alloc **out)
{
	struct turn_user *u = NULL;
	struct turn_alloc *a;
	int err;

	if (turn_alloc_find(t, ft))
		return -EEXIST;
	if (t->quota) {
		err = turn_quota_take(t->quota, user, user_len, &u);
		if (err)
			return err;
	}
	a = pool_get(&t->allocs);
	if (!a) {
		if (u)
			turn_quota_put(t->quota, u);
		return -ENOSPC;
	}
	a->ft = *ft;
	a->user = u;
	a->next_event = INFINITY;
	a->next_ft = *ft_slot(t, ft);
	*ft_slot(t, ft) = a;
	t->count++;
	*out = a;
	return 0;
}

int turn_alloc_activate(struct turn_table *t, struct turn_alloc *a, uint32_t lifetime,
			double now)
{
	for (int i = 0; i < a->n_relayed; i++)
		if (turn_alloc_find_relayed(t, &a->relayed[i]))
			return -EEXIST; /* s6: relayed addresses are unique */
	for (int i = 0; i < a->n_relayed; i++) {
		struct turn_rel_node **slot = rel_slot(t, &a->relayed[i]);

		a->rel_node[i] = (struct turn_rel_node){ *slot, a, &a->relayed[i] };
		*slot = &a->rel_node[i];
	}
	a->active = true;
	a->expires = now + lifetime;
	a->next_event = a->expires;
	heap_set(t, t->n_heap++, a);
	heap_up(t, a->heap_idx);
	return 0;
}

void turn_alloc_refresh(struct turn_table *t, struct turn_alloc *a, uint32_t lifetime,
			double now)
{
	a->expires = now + lifetime;
	if (!a->active)
		return;
	/* The next event may move either way; the sweep recomputes it. */
	a->next_event = fmin(a->next_event, a->expires);
	heap_fix(t, a);
}

uint32_t turn_alloc_remaining(const struct turn_alloc *a, double now)
{
	double left = a->expires - now;

	return left > 0 ? (uint32_t)ceil(left) : 0;
}

void turn_alloc_schedule(struct turn_table *t, struct turn_alloc *a, double when)
{
	if (!a->active || when >= a->next_event)
		return;
	a->next_event = when;
	heap_up(t, a->heap_idx);
}

void turn_alloc_free(struct turn_table *t, struct turn_alloc *a)
{
	ft_unlink(t, a);
	if (a->active) {
		rel_unlink(t, a);
		heap_remove(t, a);
	}
	if (t->cfg.release)
		t->cfg.release(a, t->cfg.release_arg);
	turn_perm_clear(t->perms, &a->ps);
	if (a->user)
		turn_quota_put(t->quota, a->user);
	pool_put(&t->allocs, a);
	t->count--;
}

double turn_table_next_event(const struct turn_table *t)
{
	return t->n_heap ? t->heap[0]->next_event : INFINITY;
}

int turn_table_expire(struct turn_table *t, double now)
{
	int expired = 0;

	while (t->n_heap && t->heap[0]->next_event <= now) {
		struct turn_alloc *a = t->heap[0];

		if (now >= a->expires) {
			turn_alloc_free(t, a);
			expired++;
			continue;
		}
		a->next_event = fmin(turn_perm_sweep(t->perms, &a->ps, now), a->expires);
		heap_down(t, 0);
	}
	return expired;
}
