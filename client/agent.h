/* agent: the ICE-style check list of natclient (RFC 8445): candidate
 * priorities (s5.1.2) and foundations (s5.1.1.3), redundant candidates
 * (s5.1.3), pairs and their priorities (s6.1.2.2-3), pruning and the pair
 * limit (s6.1.2.4-5), initial states (s6.1.2.6), and which check to send
 * on each tick of the pacing timer Ta (s6.1.4.2, s14). Pure logic over
 * arrays, no sockets and no clock: the caller sends the checks (with
 * stun_client) and feeds the results back. */
#ifndef NATCLIENT_AGENT_H
#define NATCLIENT_AGENT_H

#include <stdbool.h>
#include <stdint.h>

#include "stun_msg.h"

#define ICE_MAX_CANDS 16
#define ICE_MAX_PAIRS (ICE_MAX_CANDS * ICE_MAX_CANDS)
#define ICE_DEFAULT_MAX_PAIRS 100 /* s6.1.2.5 */
#define ICE_TA_MS 50              /* s14.2 */
#define ICE_TA_MIN_MS 5           /* s14.2: never more often, all agents together */
#define ICE_RTO_MIN_MS 500        /* s14.3 */
#define ICE_FOUNDATION_MAX 33

enum ice_cand_type {
	ICE_CAND_HOST,
	ICE_CAND_SRFLX,
	ICE_CAND_PRFLX,
	ICE_CAND_RELAY,
	/* a server-reflexive address guessed from the NAT's port allocation;
	 * signalled as srflx, preferred below real srflx and above relays */
	ICE_CAND_PREDICTED,
};

struct ice_cand {
	enum ice_cand_type type;
	uint8_t component;          /* 1..256 */
	uint32_t priority;
	stun_sockaddr addr;         /* the transport address */
	stun_sockaddr base;         /* s5.1.1: where checks go from; relayed: itself */
	stun_sockaddr server;       /* STUN/TURN server used (srflx, relay) */
	char foundation[ICE_FOUNDATION_MAX];
};

enum ice_pair_state {
	ICE_PAIR_FROZEN,
	ICE_PAIR_WAITING,
	ICE_PAIR_IN_PROGRESS,
	ICE_PAIR_SUCCEEDED,
	ICE_PAIR_FAILED,
};

struct ice_pair {
	uint8_t local, remote;      /* indexes into the check list's arrays */
	uint64_t priority;
	enum ice_pair_state state;
	bool nominated;
	char foundation[2 * ICE_FOUNDATION_MAX];
};

struct ice_checklist {
	bool controlling;
	unsigned max_pairs;         /* s6.1.2.5 limit; 0: the default 100 */
	struct ice_cand local[ICE_MAX_CANDS];
	unsigned n_local;
	struct ice_cand remote[ICE_MAX_CANDS];
	unsigned n_remote;
	struct ice_pair pairs[ICE_MAX_PAIRS];
	unsigned n_pairs;
	uint16_t triggered[ICE_MAX_PAIRS]; /* s6.1.4.1 FIFO of pair indexes */
	unsigned trig_head, trig_len;
};

/* s5.1.2.2 recommended type preferences: host 126, prflx 110, srflx 100,
 * relay 0 (predicted: 90). */
uint8_t ice_type_pref(enum ice_cand_type t);
/* s5.1.2.1: 2^24 * type pref + 2^8 * local pref + (256 - component). */
uint32_t ice_priority(enum ice_cand_type t, uint16_t local_pref, uint8_t component);
/* s6.1.2.3: 2^32 * MIN(G,D) + 2 * MAX(G,D) + (G > D ? 1 : 0). */
uint64_t ice_pair_priority(uint32_t controlling, uint32_t controlled);
/* s5.1.1.3: same type, base IP, server IP and transport <=> same foundation. */
void ice_foundation(const struct ice_cand *c, char out[ICE_FOUNDATION_MAX]);
/* Fill in priority (local_pref) and foundation of c. */
void ice_cand_finish(struct ice_cand *c, uint16_t local_pref);
/* s5.1.3: drop candidates whose address and base equal those of a
 * higher-priority one. Returns the new count. */
unsigned ice_cands_eliminate_redundant(struct ice_cand *c, unsigned n);
const char *ice_cand_type_str(enum ice_cand_type t);
/* s5.1.1.1: may an interface address (getifaddrs: address, ifa_flags) be a
 * host candidate on a socket of family? Not on a down interface, not
 * link-local (IPv4 169.254/16, IPv6 fe80::/10), multicast or unspecified;
 * loopback only, and then nothing else, when the server is on loopback
 * (peers on this host). */
bool ice_host_addr_usable(const struct sockaddr *a, unsigned if_flags, int family,
			  bool server_loopback);

/* s6.1.2: form the pairs from cl->local and cl->remote, order, prune,
 * limit and set the initial states. Returns the number of pairs. */
unsigned ice_checklist_form(struct ice_checklist *cl);
/* s6.1.4.2: the pair to check on this tick of Ta (now In-Progress), or -1
 * when there is nothing to check. */
int ice_checklist_next(struct ice_checklist *cl);
/* s6.1.4.1 / s7.3.1.4: queue a triggered check for pair i (Waiting now;
 * a Succeeded pair is left alone). Returns true when the pair was
 * In-Progress: the caller cancels that transaction ("will not retransmit"). */
bool ice_checklist_trigger(struct ice_checklist *cl, unsigned i);
/* s7.2.5.3.3 / s7.2.5.2: a check's outcome. On success, Frozen pairs with
 * the same foundation become Waiting. */
void ice_checklist_result(struct ice_checklist *cl, unsigned i, bool success);
/* Index of the pair (local base, remote address), or -1. */
int ice_checklist_find(const struct ice_checklist *cl, const stun_sockaddr *local_base,
		       const stun_sockaddr *remote);
/* s14.3: RTO = MAX(500 ms, Ta * N * (Num-Waiting + Num-In-Progress)). */
unsigned ice_checklist_rto_ms(const struct ice_checklist *cl, unsigned ta_ms);
/* s6.1.2.1: every pair Succeeded or Failed and none Succeeded. */
bool ice_checklist_failed(const struct ice_checklist *cl);
/* The highest-priority Succeeded pair, or -1. */
int ice_checklist_best_valid(const struct ice_checklist *cl);
/* s7.2.5.1 / s7.3.1.1: a role switch recomputes every pair priority. */
void ice_checklist_set_role(struct ice_checklist *cl, bool controlling);
/* s7.3.1.3: a peer-reflexive remote candidate learnt from a check: paired
 * with every local base (new pairs Waiting, appended: existing indexes do
 * not move). Returns its remote index or -1 when full. */
int ice_checklist_add_remote(struct ice_checklist *cl, const struct ice_cand *c);
const char *ice_pair_state_str(enum ice_pair_state s);

#endif
