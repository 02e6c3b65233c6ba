/* predict: port prediction for NATs with endpoint-dependent mapping
 * (RFC 4787 s4.1 APDM, "symmetric"). Sequential allocation: from two
 * mapped ports of one socket towards two server endpoints, the delta and
 * the last port give the next ports; a window of them becomes predicted
 * candidates (priority below srflx, RFC 8445 s5.1.2.1 with type preference
 * 90), which the peer checks. Optionally a low-TTL datagram to each of the
 * peer's addresses opens the local NAT's mapping towards it without
 * reaching the far NAT (Wei et al., "A New Method for Symmetric NAT
 * Traversal in UDP and TCP"), so that the first predicted port is the one
 * the peer's checks meet. Random allocation facing a cone NAT: the
 * birthday approach (distinct random ports, a packet budget in rate, count
 * and time). Pure logic here, except predict_punch_low_ttl(). */
#ifndef NATCLIENT_PREDICT_H
#define NATCLIENT_PREDICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent.h"
#include "stun_msg.h"

#define PREDICT_MAX_WINDOW 10   /* predicted candidates in an offer at most */
#define PREDICT_MAX_DELTA 32    /* |delta| above this: random allocation */
#define PREDICT_PORT_MIN 1024   /* NATs allocate from here (RFC 4787 s4.2.1) */

enum predict_alloc {
	PREDICT_ALLOC_UNKNOWN,    /* fewer than two mapped ports */
	PREDICT_ALLOC_EIM,        /* the same port towards every destination */
	PREDICT_ALLOC_SEQUENTIAL, /* a constant small delta */
	PREDICT_ALLOC_RANDOM,
};

/* What to do, from the two sides' allocation (as far as known). */
enum predict_plan {
	PREDICT_PLAN_NONE,        /* no endpoint-dependent mapping: plain ICE */
	PREDICT_PLAN_WINDOW,      /* offer a window of predicted candidates */
	PREDICT_PLAN_BIRTHDAY,    /* random facing a cone: birthday */
	PREDICT_PLAN_RELAY,       /* both hard and random: relay, spend nothing */
};

/* natclient --predict KEY=VALUE[,KEY=VALUE...] or "off". */
struct predict_opts {
	bool enabled;             /* default on */
	unsigned window;          /* predicted candidates, 1..PREDICT_MAX_WINDOW (8) */
	unsigned ttl;             /* low-TTL punch hops, 0 = off (0) */
	bool cross;               /* both sequential: the crossing punch (on) */
	unsigned sockets;         /* birthday: sockets of the hard side (256, 1..1024) */
	unsigned pps;             /* birthday: probes per second (1000) */
	unsigned packets;         /* birthday: probes in all (3000) */
	unsigned ms;              /* give up on prediction after (5000) */
};

void predict_opts_default(struct predict_opts *o);
/* Parse spec ("off", or "window=8,ttl=2,sockets=256,pps=1000,packets=3000,
 * seconds=5") into o (defaults for keys not given). 0 or -EINVAL with a
 * message in err. */
int predict_opts_parse(struct predict_opts *o, const char *spec, char *err, size_t cap);

/* The allocation pattern of ports[0..n-1], mapped from one local socket
 * towards n different destinations in this order; *delta is set when
 * sequential. */
enum predict_alloc predict_classify(const uint16_t *ports, unsigned n, int *delta);
const char *predict_alloc_str(enum predict_alloc a);
enum predict_plan predict_choose(enum predict_alloc self, enum predict_alloc peer);

/* The next window ports after last, each delta further; ports outside
 * PREDICT_PORT_MIN..65535 wrap into that range. Returns the count. */
unsigned predict_seq_ports(uint16_t last, int delta, unsigned window, uint16_t *out);

/* Both sides sequential (APDM, known delta): a crossing window. Each NAT
 * makes one new mapping per new destination, so the window's own sends
 * consume ports: the side's i-th new destination (after gap further new
 * destinations since the mapping measured as last) leaves from
 * last + (gap + 1 + i) * delta. Both sides send to the other's window in
 * the same order, so that self's i-th send, from src[i], targets dst[i]
 * and the peer's i-th send, from dst[i], targets src[i]: the pair crosses.
 * Fills dst[] (the peer's predicted ports, where to send) and src[]
 * (self's expected mapped ports) for i = 0..window-1 (at most
 * PREDICT_MAX_WINDOW); returns the count, 0 when a delta is 0. */
unsigned predict_cross_window(uint16_t self_last, int self_delta, unsigned self_gap,
			      uint16_t peer_last, int peer_delta, unsigned peer_gap,
			      unsigned window, uint16_t *dst, uint16_t *src);

/* Predicted candidates for a window: addr = srflx's IP with each port,
 * base = the local socket, local preference falling with k, so the first
 * guess is checked first. Returns the count written to out. */
unsigned predict_candidates(const stun_sockaddr *srflx, const stun_sockaddr *base,
			    const stun_sockaddr *server, uint16_t last, int delta,
			    unsigned window, struct ice_cand *out);
/* The peer's sequential window as its predicted candidates show it: the
 * port before its first guess (*last) and the step (*delta), from the two
 * guesses of highest priority (a single one: delta 1). Skips the birthday
 * flag. Returns how many guesses it offers (0: none). */
unsigned predict_peer_window(const struct ice_cand *c, unsigned n, uint16_t *last, int *delta);
/* Is a one of the predicted candidates in c[0..n-1]? */
bool predict_is_predicted(const stun_sockaddr *a, const struct ice_cand *c, unsigned n);

/* The foundation of the candidate by which a random-port side asks its
 * peer for the birthday approach (its address: the NAT's IP). */
#define PREDICT_BIRTHDAY_FOUNDATION "bday"
/* The peer's allocation as its offer/answer shows it: a birthday flag
 * candidate: random; other predicted candidates: sequential; else unknown. */
enum predict_alloc predict_peer_alloc(const struct ice_cand *c, unsigned n);

/* Birthday: distinct random ports in PREDICT_PORT_MIN..65535, a full
 * cycle of an affine permutation from a random start and stride. */
struct predict_rand {
	uint32_t pos, stride, n;
	uint32_t drawn;
};
void predict_rand_init(struct predict_rand *r, uint64_t seed);
/* 0 once every port was drawn. */
uint16_t predict_rand_port(struct predict_rand *r);

/* A probe budget: at most pps per second, total in all, for ms. */
struct predict_budget {
	unsigned pps, total, ms;
	uint64_t start_ms;
	unsigned sent;
};
void predict_budget_init(struct predict_budget *b, const struct predict_opts *o,
			 uint64_t now_ms);
/* How many probes may go now (and counts them as sent). */
unsigned predict_budget_take(struct predict_budget *b, uint64_t now_ms);
bool predict_budget_done(const struct predict_budget *b, uint64_t now_ms);

/* Send len bytes of buf to dest from fd with IP TTL ttl (then restore the
 * socket's TTL): opens the local NAT's mapping, dies before the far NAT. */
int predict_punch_low_ttl(int fd, const stun_sockaddr *dest, unsigned ttl,
			  const void *buf, size_t len);

#endif
