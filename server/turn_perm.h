/* turn_perm: the permissions (RFC 8656 s9) and channel bindings (s12) of
 * one allocation. Entries come from a per-worker pool sized at start; an
 * allocation holds a turn_perm_set of linked entries. Pure: time is passed
 * in (seconds, the loop's clock), nothing here touches a socket. */
#ifndef STUND_TURN_PERM_H
#define STUND_TURN_PERM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stun_msg.h"

#define TURN_PERMISSION_LIFETIME 300  /* RFC 8656 s9: MUST be 300 s */
#define TURN_CHANNEL_LIFETIME 600     /* s12: 10 minutes unless refreshed */
#define TURN_CHANNEL_QUARANTINE 300   /* s12: 5 minutes before reuse */

/* An address normalised for hashing and comparing: family, port, 16 bytes
 * of address (IPv4 in the first 4, the rest zero). */
struct turn_addr_key {
	uint8_t family; /* AF_INET / AF_INET6 */
	uint8_t pad;
	uint16_t port;  /* host order */
	uint8_t ip[16];
};

void turn_addr_key_set(struct turn_addr_key *k, const stun_sockaddr *a);
void turn_addr_key_to_sa(const struct turn_addr_key *k, stun_sockaddr *a);
bool turn_addr_key_ip_eq(const struct turn_addr_key *a, const struct turn_addr_key *b);
bool turn_addr_key_eq(const struct turn_addr_key *a, const struct turn_addr_key *b);

struct turn_perm {
	struct turn_perm *next;
	struct turn_addr_key peer; /* only the IP counts (s9) */
	double expires;
};

struct turn_chan {
	struct turn_chan *next;
	struct turn_addr_key peer;
	double expires;   /* bound while now < expires */
	uint16_t number;
	bool quarantined; /* expired; blocks reuse until expires + 300 */
};

/* Per allocation. */
struct turn_perm_set {
	struct turn_perm *perms;
	struct turn_chan *chans;
	uint16_t n_perms, n_chans;
};

/* Per worker: both pools and the live counts (metrics). */
struct turn_perm_pool;

struct turn_perm_pool *turn_perm_pool_new(uint32_t n_perms, uint32_t n_chans,
					  uint16_t max_per_alloc);
void turn_perm_pool_free(struct turn_perm_pool *p);
/* The highest channel number accepted: TURN_CHANNEL_MAX (RFC 8656 s12),
 * or TURN_CHANNEL_MAX_RFC5766 for RFC 5766 clients. */
#define TURN_CHANNEL_MAX_RFC5766 0x7FFF
void turn_perm_pool_set_chan_max(struct turn_perm_pool *p, uint16_t max);
uint32_t turn_perm_pool_perms(const struct turn_perm_pool *p); /* live permissions */
uint32_t turn_perm_pool_chans(const struct turn_perm_pool *p); /* bound channels */

/* Install or refresh the permission for peer's IP (s9). -ENOSPC when the
 * pool or the per-allocation limit is reached (508). */
int turn_perm_install(struct turn_perm_pool *p, struct turn_perm_set *s,
		      const struct turn_addr_key *peer, double now);
/* Is there a live permission for peer's IP? Ports are not compared (s9). */
bool turn_perm_check(const struct turn_perm_set *s, const struct turn_addr_key *peer,
		     double now);

/* Bind or refresh channel number to peer and install or refresh the peer's
 * permission (s12.2). -EINVAL (400) when the number is out of range, bound
 * or quarantined to another peer, or the peer is bound or quarantined to
 * another number; -ENOSPC (508) when out of entries. */
int turn_chan_bind(struct turn_perm_pool *p, struct turn_perm_set *s,
		   uint16_t number, const struct turn_addr_key *peer, double now);
/* The channel bound (not quarantined) to number / to peer, or NULL. */
const struct turn_chan *turn_chan_by_number(const struct turn_perm_set *s,
					    uint16_t number, double now);
const struct turn_chan *turn_chan_by_peer(const struct turn_perm_set *s,
					  const struct turn_addr_key *peer, double now);

/* Drop expired permissions, quarantine expired channels and free channels
 * whose quarantine ended. Returns the time of the next change (INFINITY
 * when the set is empty). */
double turn_perm_sweep(struct turn_perm_pool *p, struct turn_perm_set *s, double now);
/* Return every entry of the set to the pool. */
void turn_perm_clear(struct turn_perm_pool *p, struct turn_perm_set *s);

#endif
