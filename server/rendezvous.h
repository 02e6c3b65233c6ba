/* rendezvous: the registry of rendezvous IDs and the index of pending
 * offers (docs/PROTOCOL.md), shared by every worker.
 *
 * One mutex guards both: they are small, touched only by signalling
 * (Register, RdvRefresh, RdvConnect, Answer), never by the packet path
 * (DESIGN.md: "small and explicitly locked"). Every function takes the
 * lock itself; what it returns is a copy, so nothing points into the table
 * once the lock is dropped. Time is a number of seconds passed in (the
 * loop's ev_now, or a fake clock in tests): there is no clock in here.
 *
 * Errors are the negated STUN error code the request gets (-404, -409,
 * -486, -508, ...), so a handler answers with -r. */
#ifndef STUND_RENDEZVOUS_H
#define STUND_RENDEZVOUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rdv_proto.h"
#include "stun_auth.h"
#include "stun_msg.h"

#define RDV_REG_MAX 10000        /* IDs in the registry */
#define RDV_REG_USER_QUOTA 16    /* IDs one user may hold */
#define RDV_OFFERS_MAX 1024      /* pending offers, all workers */
#define RDV_USERNAME_MAX 512     /* RFC 8489 s14.3 */

/* Where a registered peer is reached: its registration flow. */
struct rdv_flow {
	int tp;               /* enum transport (worker.h) */
	int worker;           /* the worker that owns the flow */
	int laddr;            /* the server address it arrived on */
	stun_sockaddr peer;   /* the flow's reflexive address */
	void *conn;           /* TCP/TLS: the stream_conn (borrowed; only the
			       * owning worker may dereference it); else NULL */
};

/* A copy of one registration. */
struct rdv_reg {
	char id[RDV_ID_MAX + 1];
	char user[RDV_USERNAME_MAX + 1];
	struct rdv_flow flow;
	double expiry;
	uint64_t gen;          /* changes whenever the flow changes */
	uint8_t key[STUN_KEY_MAX]; /* the key its last request was signed with */
	size_t keylen;
};

struct rdv_registry;

/* max_ids and user_quota: 0 takes the defaults above. NULL on ENOMEM. */
struct rdv_registry *rdv_registry_new(uint32_t max_ids, uint32_t user_quota);
void rdv_registry_free(struct rdv_registry *r);

/* Register (create = true) or refresh (false) id for user over flow f,
 * signed with key; lifetime in seconds, already clamped by the caller;
 * a refresh with lifetime 0 deletes. On success *out (may be NULL) gets a
 * copy. Errors: -409 held by another user, -404 refresh of an ID that is
 * not registered, -486 the user's quota, -508 full, -400 a bad id. */
int rdv_registry_put(struct rdv_registry *r, const char *id, const char *user,
		     const struct rdv_flow *f, const uint8_t *key, size_t keylen,
		     uint32_t lifetime, bool create, double now, struct rdv_reg *out);
/* The live registration of id: 0, or -404. */
int rdv_registry_get(struct rdv_registry *r, const char *id, double now, struct rdv_reg *out);
/* Drop every registration made over conn (a stream that closed). */
unsigned rdv_registry_drop_conn(struct rdv_registry *r, const void *conn);
/* Remove what has expired; returns how many. */
unsigned rdv_registry_expire(struct rdv_registry *r, double now);
/* Registrations held (live or not yet swept), and by one user (live). */
unsigned rdv_registry_count(struct rdv_registry *r);
unsigned rdv_registry_user_count(struct rdv_registry *r, const char *user, double now);

/* --- pending offers ---------------------------------------------------- */

enum rdv_offer_state {
	RDV_OFFER_WAITING,    /* sent to the registered peer, no Answer yet */
	RDV_OFFER_ANSWERED,   /* Answer with a session */
	RDV_OFFER_DECLINED,   /* Answer with ERROR-CODE */
	RDV_OFFER_TIMEOUT,    /* the owner gave up: 408 */
};

/* Add an offer owned by worker `owner`, to be answered by `user` (who holds
 * the ID). Returns a slot number >= 0, or -508 when the index is full or
 * -400 if offer_id is already there. */
int rdv_offer_add(struct rdv_registry *r, const uint8_t offer_id[RDV_OFFER_ID_LEN], int owner,
		  const char *user);
/* An Answer from user: WAITING -> ANSWERED (ans) or DECLINED (ans NULL).
 * Returns 0 and *owner (the worker to wake) when it changed the state;
 * 1 when the offer was already answered (a retransmitted Answer); -404
 * unknown or timed out; -403 user is not the one the offer is for. */
int rdv_offer_answer(struct rdv_registry *r, const uint8_t offer_id[RDV_OFFER_ID_LEN],
		     const char *user, const struct rdv_msg *ans, int *owner);
/* The owner: read the state of its slot, copying the answer if ANSWERED
 * (ans may be NULL). With give_up, a WAITING offer becomes TIMEOUT. */
enum rdv_offer_state rdv_offer_poll(struct rdv_registry *r, int slot, bool give_up,
				    struct rdv_msg *ans);
/* The owner: free the slot. */
void rdv_offer_remove(struct rdv_registry *r, int slot);
unsigned rdv_offer_count(struct rdv_registry *r);

#endif
