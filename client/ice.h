/* ice: one ICE session (RFC 8445) on a stun_client's socket: paces out the
 * checks agent.c schedules (timer Ta, s6.1.4.2) with short-term credentials
 * (s7.2.2), answers the peer's checks (s7.3) with triggered checks,
 * peer-reflexive candidates and role conflicts (487, s7.3.1.1, s7.2.5.1),
 * nominates (controlling, s8.1.1) or follows the nomination (controlled),
 * and then carries data on the selected pair. The candidates and
 * credentials come from the caller (signalling is not this module's). */
#ifndef NATCLIENT_ICE_H
#define NATCLIENT_ICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent.h"
#include "stun_client.h"
#include "turn_client.h"

#define ICE_UFRAG_MAX 257
#define ICE_PWD_MAX 257

struct ice_creds {
	char ufrag[ICE_UFRAG_MAX];  /* >= 4 characters (s5.3) */
	char pwd[ICE_PWD_MAX];      /* >= 22 characters (s5.3) */
};

struct ice_params {
	bool controlling;
	uint64_t tie_breaker;
	unsigned ta_ms;             /* 0: 50 ms (s14.2) */
	unsigned nominate_after_ms; /* controlling: wait for better pairs after
				       the first valid one; 0: 200 ms */
	unsigned check_rc, check_rm;/* 0: 5 and 4 */
	unsigned fail_after_ms;     /* give up only this long after the start
				       (the peer's checks may still bring
				       peer-reflexive pairs); 0: 5000 ms */
	/* RFC 7675 consent freshness on the selected pair: a check every
	 * interval (randomised 0.8-1.2x; at least 4 s), consent lost after
	 * timeout without an answer. 0: 5000 and 30000 ms. */
	unsigned consent_interval_ms, consent_timeout_ms;
	/* Relay fallback: the controlling agent nominates a relayed pair only
	 * when no direct pair has succeeded this long after the start (while
	 * direct pairs are still being checked); the checks then go on, and
	 * the first direct pair that succeeds is nominated in its place (the
	 * state callback runs again with ICE_CONNECTED). 0: 1500 ms. */
	unsigned relay_fallback_ms;
	int verbose;
};

/* DISCONNECTED: consent expired on the selected pair (RFC 7675 s5.1): no
 * more data may be sent on it. */
enum ice_state { ICE_NEW, ICE_CHECKING, ICE_CONNECTED, ICE_FAILED, ICE_DISCONNECTED };

struct ice;
typedef void (*ice_state_cb)(struct ice *ice, enum ice_state st, void *arg);
typedef void (*ice_data_cb)(struct ice *ice, const uint8_t *buf, size_t len,
			    const stun_sockaddr *from, void *arg);

struct ice_cbs {
	ice_state_cb state;
	ice_data_cb data;
	void *arg;
};

/* Make random credentials and a tie-breaker. */
void ice_creds_random(struct ice_creds *c);
uint64_t ice_tie_breaker_random(void);

/* sc is borrowed: the owner routes its on_other datagrams to ice_input(). */
int ice_new(struct stun_client *sc, const struct ice_params *p, const struct ice_creds *local,
	    const struct ice_cbs *cbs, struct ice **out);
void ice_free(struct ice *ice);

/* Local candidates: host ones for the socket (one per interface address
 * when it is bound to a wildcard), and any the caller learnt (srflx). */
int ice_gather_host(struct ice *ice);
/* The same, knowing the server (on loopback: loopback addresses only). */
int ice_gather_host_for(struct ice *ice, const stun_sockaddr *server);
int ice_add_local(struct ice *ice, const struct ice_cand *c);
unsigned ice_local_candidates(const struct ice *ice, const struct ice_cand **out);
/* A TURN allocation (borrowed, allocated, on the same stun_client): adds
 * the relayed candidate; checks and data on its pairs go through it, with
 * permissions for the peer's addresses and a channel for the selected one.
 * The owner passes the turn_client's data to ice_input_relayed(). */
int ice_set_relay(struct ice *ice, struct turn_client *turn);

/* The peer's credentials and candidates; then start checking. */
int ice_set_remote(struct ice *ice, const struct ice_creds *remote,
		   const struct ice_cand *cands, unsigned n);
int ice_start(struct ice *ice);

/* Feed a datagram the stun_client did not match. true if consumed. */
bool ice_input(struct ice *ice, const uint8_t *buf, size_t len, const stun_sockaddr *from,
	       const struct stun_msg *m);

/* A datagram from peer that came through the TURN relay. */
void ice_input_relayed(struct ice *ice, const uint8_t *buf, size_t len,
		       const stun_sockaddr *peer);

/* Data on the selected pair (-ENOTCONN before). */
int ice_send(struct ice *ice, const void *buf, size_t len);

enum ice_state ice_get_state(const struct ice *ice);
bool ice_is_controlling(const struct ice *ice);
/* Does the pair go through a TURN relay (either side)? */
bool ice_pair_is_relayed(const struct ice *ice, unsigned idx);
/* The selected pair's candidates (NULL before CONNECTED). */
const struct ice_cand *ice_selected_local(const struct ice *ice);
const struct ice_cand *ice_selected_remote(const struct ice *ice);
/* The session's checks and data go from sc from now on (borrowed; predict's
 * birthday: the socket a probe reached), while checking or connected over
 * the relay (then a direct pair that opens takes over). Every direct pair
 * that has not succeeded is checked again: the one towards `toward` (may
 * be NULL) at once, the others as triggered checks. Relayed pairs still go
 * through the TURN client, whichever socket it is on. */
int ice_move_socket(struct ice *ice, struct stun_client *sc, const stun_sockaddr *toward);
/* Our address on the selected pair as the peer saw it (the
 * XOR-MAPPED-ADDRESS of our successful check on it), or NULL. */
const stun_sockaddr *ice_selected_mapped(const struct ice *ice);
const struct ice_checklist *ice_get_checklist(const struct ice *ice);

struct ice_stats {
	uint64_t checks_sent, checks_ok, checks_failed, checks_received, triggered;
	uint64_t role_conflicts, bad_auth, prflx_remote;
	uint64_t consent_sent, consent_ok, switches;
};
const struct ice_stats *ice_get_stats(const struct ice *ice);

#endif
