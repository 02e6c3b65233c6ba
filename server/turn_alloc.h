/* turn_alloc: the allocations of one worker (RFC 8656 s6-s8), found by the
 * client's 5-tuple or by a relayed address; their lifetimes on a min-heap
 * of next events; per-user and total quotas shared by all workers. Objects
 * come from a pool sized at start. Pure: the clock is passed in. */
#ifndef STUND_TURN_ALLOC_H
#define STUND_TURN_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stun_auth.h"
#include "stun_msg.h"
#include "turn_perm.h"

#define TURN_DEFAULT_LIFETIME 600 /* RFC 8656 s6 */
#define TURN_MAX_USERNAME 513     /* RFC 8489 s14.3: < 513 bytes */

/* The 5-tuple (s2): transport, client and server transport addresses. */
struct turn_5tuple {
	uint8_t proto; /* IPPROTO_UDP / IPPROTO_TCP (TLS counts as TCP) */
	uint8_t pad[3];
	struct turn_addr_key client, server;
};

void turn_5tuple_set(struct turn_5tuple *t, uint8_t proto, const stun_sockaddr *client,
		     const stun_sockaddr *server);

/* Quotas (s5, s7.2 item 10), shared by the workers of a process. */
struct turn_quota;
struct turn_user; /* one user holding allocations */

/* total / per_user: 0 = unlimited; max_users: distinct users at once. */
struct turn_quota *turn_quota_new(uint32_t total, uint32_t per_user, uint32_t max_users);
void turn_quota_free(struct turn_quota *q);
/* Count one allocation for user ("" = anonymous: only the total counts).
 * -EDQUOT when a quota is reached (486), -ENOSPC out of user entries. */
int turn_quota_take(struct turn_quota *q, const char *user, size_t len,
		    struct turn_user **out);
void turn_quota_put(struct turn_quota *q, struct turn_user *u);
/* On reload: new limits for allocations taken from now on (those held
 * stay, even above the new limits). */
void turn_quota_set_limits(struct turn_quota *q, uint32_t total, uint32_t per_user);
const char *turn_user_name(const struct turn_user *u, size_t *len);
uint32_t turn_quota_total(struct turn_quota *q);

struct turn_alloc {
	struct turn_5tuple ft;
	struct turn_addr_key relayed[STUN_MAX_RELAYED_ADDRS];
	uint8_t n_relayed;
	uint8_t transport;       /* REQUESTED-TRANSPORT: 17 or 6 */
	bool dont_fragment;
	bool active;             /* relayed addresses indexed, lifetime running */
	uint8_t pw_alg;          /* STUN_PWALG_* the key was made with; 0 none */
	uint8_t key_len;
	uint8_t key[STUN_KEY_MAX];
	uint8_t tid[STUN_TID_LEN]; /* of the creating Allocate (s7.2 note) */
	uint64_t token;          /* RESERVATION-TOKEN we answered with; 0 none */
	double expires;          /* time-to-expiry as an absolute time */
	struct turn_user *user;  /* owned reference on the quota entry */
	struct turn_perm_set ps;

	/* owned by the table */
	struct turn_alloc *next_ft;
	struct turn_rel_node {
		struct turn_rel_node *next;
		struct turn_alloc *a;
		const struct turn_addr_key *key;
	} rel_node[STUN_MAX_RELAYED_ADDRS];
	double next_event;
	uint32_t heap_idx;
};

struct turn_table;

struct turn_table_cfg {
	uint32_t capacity;          /* allocations in this worker's pool */
	uint32_t default_lifetime;  /* s6: 600 */
	uint32_t max_lifetime;      /* s7.2: RECOMMENDED <= 3600 */
	uint32_t perms;             /* permission entries in the pool */
	uint32_t chans;             /* channel entries in the pool */
	uint16_t max_per_alloc;     /* permissions / channels per allocation */
	size_t ext_size;            /* caller's bytes after each allocation */
	/* Called before an allocation returns to the pool (close sockets,
	 * release ports). May be NULL. */
	void (*release)(struct turn_alloc *a, void *arg);
	void *release_arg;
};

/* quota is borrowed (may be NULL: no quotas). */
struct turn_table *turn_table_new(const struct turn_table_cfg *cfg, struct turn_quota *quota);
void turn_table_free(struct turn_table *t);
struct turn_perm_pool *turn_table_perms(struct turn_table *t);
uint32_t turn_table_count(const struct turn_table *t);

/* The caller's extension area of an allocation, and back. */
void *turn_alloc_ext(struct turn_alloc *a);
struct turn_alloc *turn_alloc_from_ext(void *ext);

/* On reload: the longest lifetime granted from now on (s7.2). */
void turn_table_set_max_lifetime(struct turn_table *t, uint32_t max_lifetime);
/* s7.2 / s8.2: the lifetime to grant; 0 only when asked for 0. */
uint32_t turn_table_lifetime(const struct turn_table *t, bool has_lifetime, uint32_t asked);

/* Create an allocation on 5-tuple ft for user (s7.2): counted against the
 * quotas and findable by 5-tuple at once. -EEXIST when the 5-tuple is in
 * use (437), -EDQUOT (486), -ENOSPC / -ENOMEM (508). The caller fills the
 * relayed addresses and calls turn_alloc_activate(), or turn_alloc_free(). */
int turn_alloc_new(struct turn_table *t, const struct turn_5tuple *ft, const char *user,
		   size_t user_len, struct turn_alloc **out);
/* Index the relayed addresses and start the lifetime. -EEXIST when a
 * relayed address is already in the table. */
int turn_alloc_activate(struct turn_table *t, struct turn_alloc *a, uint32_t lifetime,
			double now);
/* s8.2: set the time-to-expiry (lifetime > 0). */
void turn_alloc_refresh(struct turn_table *t, struct turn_alloc *a, uint32_t lifetime,
			double now);
/* Remaining seconds, rounded up; 0 when expired. */
uint32_t turn_alloc_remaining(const struct turn_alloc *a, double now);
/* Ask for a sweep no later than when (a permission or channel changed). */
void turn_alloc_schedule(struct turn_table *t, struct turn_alloc *a, double when);
void turn_alloc_free(struct turn_table *t, struct turn_alloc *a);

struct turn_alloc *turn_alloc_find(const struct turn_table *t, const struct turn_5tuple *ft);
struct turn_alloc *turn_alloc_find_relayed(const struct turn_table *t,
					   const struct turn_addr_key *relayed);

/* Earliest next event (INFINITY when the table is empty). */
double turn_table_next_event(const struct turn_table *t);
/* Run every event due at now: sweep permissions and channels, free expired
 * allocations. Returns how many allocations expired. */
int turn_table_expire(struct turn_table *t, double now);

#endif
