/* rto_cache: the RTO a client keeps per server (RFC 8489 s6.2.1): "cached
 * by a client after the completion of the transaction and used as the
 * starting value for RTO for the next transaction to the same server
 * (based on equality of IP address)", stale after 10 minutes without a
 * transaction. The estimate is RFC 6298's (SRTT, RTTVAR) with Karn's
 * algorithm: only transactions answered on their first request give a
 * sample; one that needed retransmissions keeps its backed-off RTO. Not
 * rounded up to seconds (1 ms accuracy); never below the floor (the
 * client's initial RTO, >= 500 ms on the Internet). Pure logic: the caller
 * passes the time. */
#ifndef NATCLIENT_RTO_CACHE_H
#define NATCLIENT_RTO_CACHE_H

#include <stdbool.h>

#include "stun_msg.h"

#define RTO_CACHE_SLOTS 8
#define RTO_CACHE_STALE_S 600.0   /* s6.2.1: 10 minutes */
#define RTO_CACHE_MAX_MS 60000    /* RFC 6298 (2.5): a maximum >= 60 s */

struct rto_entry {
	bool used;
	stun_sockaddr ip;          /* port ignored */
	double last;               /* time of the last transaction */
	double srtt, rttvar;       /* ms */
	unsigned rto_ms;
};

struct rto_cache {
	unsigned floor_ms;
	struct rto_entry e[RTO_CACHE_SLOTS];
};

void rto_cache_init(struct rto_cache *c, unsigned floor_ms);
/* The starting RTO for a transaction to server at now: the cached value,
 * or dflt when there is none or it is stale. */
unsigned rto_cache_get(const struct rto_cache *c, const stun_sockaddr *server, double now,
		       unsigned dflt);
/* A transaction to server completed at now after sends requests, the
 * first rtt_ms before the answer (sends == 1), last_rto_ms the interval
 * the last request was sent with. */
void rto_cache_done(struct rto_cache *c, const stun_sockaddr *server, double now,
		    unsigned sends, unsigned rtt_ms, unsigned last_rto_ms);

#endif
