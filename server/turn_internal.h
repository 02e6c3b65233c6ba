/* Private to turn.c, turn_methods.c and turn_relay.c. */
#ifndef STUND_TURN_INTERNAL_H
#define STUND_TURN_INTERNAL_H

#include <ev.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "auth.h"

#include "relay_port.h"
#include "turn.h"
#include "turn_alloc.h"
#include "txcache.h"

#define TURN_BATCH 16
#define TURN_PEER_TX 64 /* datagrams to peers queued for one sendmmsg round */
#define TURN_HEADROOM 48 /* Data indication, IPv6 peer: 20 + 24 + 4 */
#define TURN_BUF_DATA 65536
#define TURN_MAX_LIFETIME_DEFAULT 3600 /* s7.2: RECOMMENDED at most 1 hour */

/* Why a request was refused (metric labels); one per error code sent. */
enum turn_refusal {
	TR_BAD_REQUEST, TR_UNAUTHORIZED, TR_FORBIDDEN, TR_MISMATCH, TR_STALE_NONCE,
	TR_FAMILY, TR_WRONG_CREDENTIALS, TR_TRANSPORT, TR_PEER_FAMILY, TR_QUOTA,
	TR_CAPACITY, TR_SERVER_ERROR, TR_COUNT
};

/* Why relayed data was dropped. */
enum turn_drop {
	TD_NO_ALLOCATION, TD_NO_PERMISSION, TD_NO_CHANNEL, TD_FILTERED, TD_MALFORMED,
	TD_BANDWIDTH, TD_SEND_ERROR, TD_TOO_BIG, TD_COUNT
};

/* A CONNECTION-ID's low byte names the worker holding it (tcp_handoff). */
#define TURN_CONN_ID_WORKER_MASK 0xFFu

/* What one allocation may make the server hold. */
#define TURN_PER_ALLOC 64           /* permissions / channels per allocation */
#define TURN_TCP_CONNS_PER_ALLOC 64 /* RFC 6062 data connections per allocation */
#define TURN_TCP_PENDING_PER_ALLOC 16 /* of them, not yet bound (ConnectionAttempt
				       * sent, or Connect in progress) */

/* Per-allocation limits reached (each also a refusal or drop). */
enum turn_limit {
	TL_PERMS_PER_ALLOC, TL_CHANS_PER_ALLOC, TL_TCP_CONNS_PER_ALLOC,
	TL_TCP_PENDING_PER_ALLOC, TL_COUNT
};

/* Single writer (the worker), read by the metrics code. */
struct turn_counters {
	_Atomic uint64_t refused[TR_COUNT];
	_Atomic uint64_t dropped[TD_COUNT];
	_Atomic uint64_t limited[TL_COUNT];
	_Atomic uint64_t allocs_created, allocs_expired, allocs_deleted;
	_Atomic uint64_t pkts_to_peer, bytes_to_peer, pkts_to_client, bytes_to_client;
	_Atomic uint64_t icmp_to_client;
};

static inline void turn_count(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

struct turn_shared {
	struct relay_ports *ports;
	struct turn_quota *quota;
	uint32_t capacity;  /* allocations per worker */
	uint32_t max_lifetime;
	uint64_t max_bps;
	bool has_external;
	stun_sockaddr external; /* announced instead of relay-ip of its family */
	stun_sockaddr external_private;
	bool has_external_private;
	const char *software;   /* NULL: no SOFTWARE attribute */
};

/* What an allocation carries besides turn_alloc: its sockets and link. */
struct turn_relay {
	struct turn_service *ts;
	ev_io io[STUN_MAX_RELAYED_ADDRS]; /* fd -1 when unused */
	struct turn_link link;
	double bucket_at;      /* max-bps token bucket */
	double bucket_bytes;
	uint64_t max_bps;      /* max-bps when it was made; 0 = unlimited */
	bool df[STUN_MAX_RELAYED_ADDRS]; /* IP_PMTUDISC_DO currently set */
	struct turn_tcp_conn *tcp; /* RFC 6062: this allocation's connections */
	uint8_t addr_err_family;  /* ADDRESS-ERROR-CODE of a partial dual */
	uint16_t addr_err_code;   /* allocation (s7.2 item 9); 0 none */
};

/* Data lands at b + TURN_HEADROOM; the header towards the client is
 * written in front of it, padding behind it (the 4-byte tail). */
struct turn_rxbuf {
	uint8_t b[TURN_HEADROOM + TURN_BUF_DATA + 4];
};

static inline uint8_t *turn_rx_data(struct turn_rxbuf *r)
{
	return r->b + TURN_HEADROOM;
}

struct turn_service {
	struct ev_loop *loop;
	struct turn_shared *sh;            /* borrowed */
	bool rfc5766_channels;             /* from the config at start */
	uint32_t rcvbuf, sndbuf;           /* udp-recv/send-buffer, relayed sockets */
	uint64_t max_bps;                  /* for new allocations (reloaded) */
	const struct auth_ctx *auth;       /* borrowed, may be NULL */
	bool no_auth;                      /* auth NULL: serve (no-auth) or refuse */
	const struct peer_filter *filter;  /* borrowed, may be NULL */
	struct turn_table *table;
	struct txcache *tx;
	ev_timer timer;
	double timer_at;
	uint64_t tid_seq[2];               /* indication transaction IDs */
	struct turn_counters ctr;
	struct turn_tcp_conn *tcp_conns;   /* RFC 6062 peer data connections */
	uint32_t next_conn_id;
	uint8_t worker_id;                 /* in the low byte of CONNECTION-IDs */
	struct auth_counters *auth_ctr;    /* owned */
	void *peer_ctr;                    /* owned struct peer_counters */
	/* the relay receive batch */
	struct turn_rxbuf *rx;             /* TURN_BATCH of them */
	struct mmsghdr rx_msg[TURN_BATCH], tx_msg[TURN_BATCH];
	struct iovec rx_iov[TURN_BATCH], tx_iov[TURN_BATCH];
	stun_sockaddr rx_from[TURN_BATCH];
	/* client -> peer datagrams of one listener batch, sent by turn_flush():
	 * the data stays in the listener's receive buffers until then */
	struct mmsghdr ptx_msg[TURN_PEER_TX];
	struct iovec ptx_iov[TURN_PEER_TX];
	stun_sockaddr ptx_to[TURN_PEER_TX];
	int ptx_fd[TURN_PEER_TX];
	unsigned n_ptx;
};

/* One request being handled (turn_methods.c, turn_tcp.c). */
struct turn_req {
	struct turn_service *ts;
	const struct turn_link *link;
	const struct stun_msg *m;
	struct turn_5tuple ft;
	double now;
	bool authed;             /* ar holds a user and a key */
	bool regenerable;        /* a retransmission gets this answer anew */
	const char *reason;      /* reason phrase of the error; NULL = the table's */
	struct auth_result ar;
	struct stun_builder b;
	uint8_t *out;
	size_t cap;
};

/* A handler's answer besides 0 (success) and STUN error codes: nothing to
 * send now (the response goes out later, RFC 6062 Connect). */
#define TURN_ANSWER_LATER (-1)

/* turn_relay.c */
int turn_relay_open(struct turn_service *ts, struct turn_alloc *a, int i,
		    const stun_sockaddr *addr);
void turn_relay_release(struct turn_alloc *a, void *arg);
void turn_timer_update(struct turn_service *ts);
enum peer_reason;
int turn_peer_check(struct turn_service *ts, const stun_sockaddr *peer);

/* turn_tcp.c: RFC 6062 TCP allocations */
struct turn_tcp_conn;
int turn_tcp_listen(struct turn_service *ts, struct turn_alloc *a, const stun_sockaddr *addr);
int turn_tcp_connect(struct turn_req *r, struct turn_alloc *a);
int turn_tcp_connection_bind(struct turn_req *r);
void turn_tcp_release(struct turn_service *ts, struct turn_alloc *a);
void turn_tcp_client_closed(void *conn_arg);

#endif
