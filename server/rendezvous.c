/* rendezvous: the shared registry of IDs and index of pending offers. */
#include "rendezvous.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seeded_hash.h"

struct reg_entry {
	struct rdv_reg r;
	bool used;
	int32_t next;          /* hash chain, or the free list */
};

struct offer_slot {
	bool used;
	uint8_t offer_id[RDV_OFFER_ID_LEN];
	int owner;
	enum rdv_offer_state state;
	char user[RDV_USERNAME_MAX + 1];
	struct rdv_msg answer;
};

struct rdv_registry {
	pthread_mutex_t lock;
	uint32_t max, quota;
	uint64_t seed, next_gen;
	struct reg_entry *e;
	int32_t *bucket;       /* heads of the hash chains, -1 = empty */
	uint32_t mask;
	int32_t free_head;     /* recycled entries */
	uint32_t fresh;        /* entries [fresh, max) were never used (untouched pages) */
	unsigned n;
	unsigned n_conn;       /* entries over a stream or session (conn set) */
	struct offer_slot *offers;
	unsigned n_offers;
};

struct rdv_registry *rdv_registry_new(uint32_t max_ids, uint32_t user_quota)
{
	struct rdv_registry *r = calloc(1, sizeof(*r));
	uint32_t nb = 16;

	if (!r)
		return NULL;
	r->max = max_ids ? max_ids : RDV_REG_MAX;
	r->quota = user_quota ? user_quota : RDV_REG_USER_QUOTA;
	while (nb < r->max * 2)
		nb *= 2;
	r->mask = nb - 1;
	r->seed = seeded_hash_seed();
	r->next_gen = 1;
	r->e = calloc(r->max, sizeof(*r->e));
	r->bucket = malloc(nb * sizeof(*r->bucket));
	r->offers = calloc(RDV_OFFERS_MAX, sizeof(*r->offers));
	if (!r->e || !r->bucket || !r->offers || pthread_mutex_init(&r->lock, NULL)) {
		free(r->e);
		free(r->bucket);
		free(r->offers);
		free(r);
		return NULL;
	}
	for (uint32_t i = 0; i < nb; i++)
		r->bucket[i] = -1;
	/* Entries are handed out from fresh first: an idle registry touches
	 * none of the calloc'ed table. */
	r->free_head = -1;
	r->fresh = 0;
	return r;
}

void rdv_registry_free(struct rdv_registry *r)
{
	if (!r)
		return;
	/* the keys are secrets: wipe them (RFC 8489 s9.2.2 keys) */
	memset(r->e, 0, r->fresh * sizeof(*r->e));
	pthread_mutex_destroy(&r->lock);
	free(r->e);
	free(r->bucket);
	free(r->offers);
	free(r);
}

/* ---- the table (lock held) ---- */

static uint32_t bucket_of(const struct rdv_registry *r, const char *id)
{
	return (uint32_t)seeded_hash(r->seed, id, strlen(id)) & r->mask;
}

static int32_t find(const struct rdv_registry *r, const char *id)
{
	for (int32_t i = r->bucket[bucket_of(r, id)]; i >= 0; i = r->e[i].next)
		if (!strcmp(r->e[i].r.id, id))
			return i;
	return -1;
}

static void unlink_entry(struct rdv_registry *r, int32_t i)
{
	int32_t *p = &r->bucket[bucket_of(r, r->e[i].r.id)];

	while (*p != i)
		p = &r->e[*p].next;
	*p = r->e[i].next;
	if (r->e[i].r.flow.conn)
		r->n_conn--;
	memset(&r->e[i], 0, sizeof(r->e[i]));
	r->e[i].next = r->free_head;
	r->free_head = i;
	r->n--;
}

static int32_t alloc_entry(struct rdv_registry *r, const char *id)
{
	int32_t i = r->free_head;
	uint32_t b;

	if (i >= 0)
		r->free_head = r->e[i].next;
	else if (r->fresh < r->max)
		i = (int32_t)r->fresh++;
	else
		return -1;
	memset(&r->e[i], 0, sizeof(r->e[i]));
	r->e[i].used = true;
	strcpy(r->e[i].r.id, id);
	b = bucket_of(r, id);
	r->e[i].next = r->bucket[b];
	r->bucket[b] = i;
	r->n++;
	return i;
}

static bool live(const struct reg_entry *e, double now)
{
	return e->used && e->r.expiry > now;
}

static unsigned sweep(struct rdv_registry *r, double now)
{
	unsigned n = 0;

	for (uint32_t i = 0; i < r->fresh; i++) {
		if (r->e[i].used && !live(&r->e[i], now)) {
			unlink_entry(r, (int32_t)i);
			n++;
		}
	}
	return n;
}

static unsigned user_count(const struct rdv_registry *r, const char *user, double now)
{
	unsigned n = 0;

	for (uint32_t i = 0; i < r->fresh; i++)
		if (live(&r->e[i], now) && !strcmp(r->e[i].r.user, user))
			n++;
	return n;
}

static bool same_flow(const struct rdv_flow *a, const struct rdv_flow *b)
{
	return a->tp == b->tp && a->worker == b->worker && a->laddr == b->laddr &&
	       a->conn == b->conn && stun_sockaddr_equal(&a->peer, &b->peer);
}

static void fill(struct rdv_registry *r, struct reg_entry *e, const char *user,
		 const struct rdv_flow *f, const uint8_t *key, size_t keylen, double expiry)
{
	if (!e->r.gen || !same_flow(&e->r.flow, f))
		e->r.gen = r->next_gen++;
	r->n_conn += (f->conn != NULL) - (e->r.flow.conn != NULL);
	snprintf(e->r.user, sizeof(e->r.user), "%s", user);
	e->r.flow = *f;
	e->r.expiry = expiry;
	if (keylen > sizeof(e->r.key))
		keylen = sizeof(e->r.key);
	memcpy(e->r.key, key, keylen);
	e->r.keylen = keylen;
}

/* A new entry for a Register: the quota, then room (RFC 8656 s18.11's 486
 * and 508, reused for registrations). */
static int32_t create(struct rdv_registry *r, const char *id, const char *user, double now)
{
	int32_t i;

	if (user_count(r, user, now) >= r->quota)
		return -RDV_ERR_QUOTA;
	if (r->free_head < 0 && r->fresh >= r->max)
		sweep(r, now);
	i = alloc_entry(r, id);
	return i < 0 ? -RDV_ERR_FULL : i;
}

static int put_locked(struct rdv_registry *r, const char *id, const char *user,
		      const struct rdv_flow *f, const uint8_t *key, size_t keylen,
		      uint32_t lifetime, bool create_it, double now, struct rdv_reg *out)
{
	int32_t i = find(r, id);

	if (i >= 0 && !live(&r->e[i], now)) {
		unlink_entry(r, i);
		i = -1;
	}
	/* an ID held by one user cannot be taken by another */
	if (i >= 0 && strcmp(r->e[i].r.user, user))
		return -RDV_ERR_ID_TAKEN;
	if (i < 0 && !create_it)
		return -RDV_ERR_UNKNOWN_PEER;
	if (!create_it && !lifetime) {
		unlink_entry(r, i);
		return 0;
	}
	if (i < 0)
		i = create(r, id, user, now);
	if (i < 0)
		return i;
	fill(r, &r->e[i], user, f, key, keylen, now + lifetime);
	if (out)
		*out = r->e[i].r;
	return 0;
}

/* ---- the registry API ---- */

int rdv_registry_put(struct rdv_registry *r, const char *id, const char *user,
		     const struct rdv_flow *f, const uint8_t *key, size_t keylen,
		     uint32_t lifetime, bool create_it, double now, struct rdv_reg *out)
{
	int rc;

	if (!id || !rdv_id_valid(id, strlen(id)) || !user || !f || (!key && keylen))
		return -STUN_ERR_BAD_REQUEST;
	if (create_it && !lifetime)
		return -STUN_ERR_BAD_REQUEST;
	pthread_mutex_lock(&r->lock);
	rc = put_locked(r, id, user, f, key, keylen, lifetime, create_it, now, out);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int rdv_registry_get(struct rdv_registry *r, const char *id, double now, struct rdv_reg *out)
{
	int32_t i;
	int rc = -RDV_ERR_UNKNOWN_PEER;

	pthread_mutex_lock(&r->lock);
	i = find(r, id);
	if (i >= 0 && live(&r->e[i], now)) {
		if (out)
			*out = r->e[i].r;
		rc = 0;
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

unsigned rdv_registry_drop_conn(struct rdv_registry *r, const void *conn)
{
	unsigned n = 0;

	if (!conn)
		return 0;
	pthread_mutex_lock(&r->lock);
	/* most closing connections registered nothing: no scan then */
	for (uint32_t i = 0; i < r->fresh && r->n_conn; i++) {
		if (r->e[i].used && r->e[i].r.flow.conn == conn) {
			unlink_entry(r, (int32_t)i);
			n++;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return n;
}

unsigned rdv_registry_expire(struct rdv_registry *r, double now)
{
	unsigned n;

	pthread_mutex_lock(&r->lock);
	n = r->n ? sweep(r, now) : 0;
	pthread_mutex_unlock(&r->lock);
	return n;
}

unsigned rdv_registry_count(struct rdv_registry *r)
{
	unsigned n;

	pthread_mutex_lock(&r->lock);
	n = r->n;
	pthread_mutex_unlock(&r->lock);
	return n;
}

unsigned rdv_registry_user_count(struct rdv_registry *r, const char *user, double now)
{
	unsigned n;

	pthread_mutex_lock(&r->lock);
	n = user_count(r, user, now);
	pthread_mutex_unlock(&r->lock);
	return n;
}

/* ---- pending offers ---- */

static int find_offer(const struct rdv_registry *r, const uint8_t id[RDV_OFFER_ID_LEN])
{
	for (int i = 0; i < RDV_OFFERS_MAX; i++)
		if (r->offers[i].used && !memcmp(r->offers[i].offer_id, id, RDV_OFFER_ID_LEN))
			return i;
	return -1;
}

static int add_locked(struct rdv_registry *r, const uint8_t offer_id[RDV_OFFER_ID_LEN],
		      int owner, const char *user)
{
	struct offer_slot *s;

	if (find_offer(r, offer_id) >= 0)
		return -STUN_ERR_BAD_REQUEST;
	for (int i = 0; i < RDV_OFFERS_MAX; i++) {
		s = &r->offers[i];
		if (s->used)
			continue;
		memset(s, 0, sizeof(*s));
		s->used = true;
		memcpy(s->offer_id, offer_id, RDV_OFFER_ID_LEN);
		s->owner = owner;
		s->state = RDV_OFFER_WAITING;
		snprintf(s->user, sizeof(s->user), "%s", user);
		r->n_offers++;
		return i;
	}
	return -RDV_ERR_FULL;
}

int rdv_offer_add(struct rdv_registry *r, const uint8_t offer_id[RDV_OFFER_ID_LEN], int owner,
		  const char *user)
{
	int rc;

	pthread_mutex_lock(&r->lock);
	rc = add_locked(r, offer_id, owner, user);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

static int answer_locked(struct rdv_registry *r, const uint8_t offer_id[RDV_OFFER_ID_LEN],
			 const char *user, const struct rdv_msg *ans, int *owner)
{
	int i = find_offer(r, offer_id);
	struct offer_slot *s;

	if (i < 0)
		return -RDV_ERR_UNKNOWN_PEER;
	s = &r->offers[i];
	if (strcmp(s->user, user))
		return -STUN_ERR_FORBIDDEN;
	if (s->state == RDV_OFFER_TIMEOUT)
		return -RDV_ERR_UNKNOWN_PEER;
	if (s->state != RDV_OFFER_WAITING)
		return 1;
	s->state = ans ? RDV_OFFER_ANSWERED : RDV_OFFER_DECLINED;
	if (ans)
		s->answer = *ans;
	*owner = s->owner;
	return 0;
}

int rdv_offer_answer(struct rdv_registry *r, const uint8_t offer_id[RDV_OFFER_ID_LEN],
		     const char *user, const struct rdv_msg *ans, int *owner)
{
	int rc;

	pthread_mutex_lock(&r->lock);
	rc = answer_locked(r, offer_id, user, ans, owner);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

enum rdv_offer_state rdv_offer_poll(struct rdv_registry *r, int slot, bool give_up,
				    struct rdv_msg *ans)
{
	struct offer_slot *s = &r->offers[slot];
	enum rdv_offer_state st;

	pthread_mutex_lock(&r->lock);
	if (give_up && s->state == RDV_OFFER_WAITING)
		s->state = RDV_OFFER_TIMEOUT;
	st = s->state;
	if (st == RDV_OFFER_ANSWERED && ans)
		*ans = s->answer;
	pthread_mutex_unlock(&r->lock);
	return st;
}

void rdv_offer_remove(struct rdv_registry *r, int slot)
{
	if (slot < 0 || slot >= RDV_OFFERS_MAX)
		return;
	pthread_mutex_lock(&r->lock);
	if (r->offers[slot].used) {
		memset(&r->offers[slot], 0, sizeof(r->offers[slot]));
		r->n_offers--;
	}
	pthread_mutex_unlock(&r->lock);
}

unsigned rdv_offer_count(struct rdv_registry *r)
{
	unsigned n;

	pthread_mutex_lock(&r->lock);
	n = r->n_offers;
	pthread_mutex_unlock(&r->lock);
	return n;
}
