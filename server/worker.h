/* worker: one libev loop in its own thread, with its own SO_REUSEPORT
 * sockets on every listening address, its own tables and counters.
 *
 * The main thread builds the listening address set (struct laddr_set) from
 * the config, opens every worker's sockets (so a bind error is reported
 * before "stund ready"), then starts the threads. It hands a new config to
 * a worker with worker_set_config() and stops it with worker_stop(); both
 * wake the loop through an ev_async. */
#ifndef STUND_WORKER_H
#define STUND_WORKER_H

#include <ev.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "metrics.h"
#include "ratelimit.h"
#include "stun_msg.h"

enum transport { TP_UDP, TP_TCP, TP_TLS, TP_DTLS };
const char *transport_name(enum transport tp);

/* One listening address/port pair. For RFC 5780 each knows the indexes of
 * its partners: same port other IP, same IP other port, both changed. */
#define LADDR_MAX (CFG_MAX_LISTEN * 2)
struct laddr {
	stun_sockaddr addr;
	bool wildcard;   /* 0.0.0.0 / :: : no RESPONSE-ORIGIN */
	int alt_ip;      /* (Ca, Dp), -1 if none */
	int alt_port;    /* (Da, Cp) */
	int alt_both;    /* (Ca, Cp): OTHER-ADDRESS */
};
struct laddr_set {
	struct laddr a[LADDR_MAX];
	int n;
};
/* RFC 5780 s6: with two addresses of one family, A1/A2 x P1/P2. */
void laddr_set_build(struct laddr_set *s, const struct config *c);

/* State shared by all workers: read-only after start, except counters. */
struct stund_shared {
	struct laddr_set laddrs;
	int n_workers;
	uint32_t conns;                     /* open stream connections, all workers (atomic) */
	struct turn_shared *turn;           /* TURN relay ports and quotas */
	struct rdv_service *rdv;            /* rendezvous registry (rdv_service.h) */
	struct tls_shared *tls;             /* NULL: no TLS/DTLS (listener_tls.h) */
	struct tcp_handoff *handoff;        /* per-worker mailboxes (tcp_handoff.h) */
};

struct udp_listener {
	struct worker *w;
	int fd;          /* -1: not open */
	int tx_fd;       /* send-only twin of fd (listener_udp.c), or -1 */
	int laddr;
	ev_io io;
};

struct tcp_listener {
	struct worker *w;
	int fd;
	int laddr;
	ev_io io;
};

struct stream_conn;
struct turn_shared;
struct turn_service;
struct auth_ctx;
struct peer_filter;
struct rdv_service;
struct rdv_worker;
struct tls_shared;
struct tls_worker;

struct udp_batch;

struct worker {
	int id;
	struct stund_shared *shared;       /* borrowed */
	struct ev_loop *loop;
	pthread_t thread;
	bool started;
	const struct config *cfg;          /* own reference; replaced on reload */
	const struct config *pending;      /* handed over by the main thread (atomic) */
	int stop_requested;                /* atomic */
	bool draining;
	ev_async wake;
	ev_timer drain_timer;

	struct metrics metrics;
	struct ratelimit rl_all, rl_redirect;

	struct udp_listener udp[LADDR_MAX]; /* same index as the laddr set */
	struct tcp_listener tcp[LADDR_MAX];
	struct udp_batch *batch;           /* receive/send buffers */

	struct turn_service *turn;         /* the TURN relay of this worker */
	struct auth_ctx *turn_auth;        /* owned; NULL: no credentials */
	struct peer_filter *turn_filter;   /* owned */
	struct rdv_worker *rdv;            /* rendezvous: pending connects, mailbox */
	struct tls_worker *tls;            /* TLS/DTLS listeners (listener_tls.h) */

	struct stream_conn *conns;         /* list of open stream connections */
	unsigned n_conns;
};

/* Open the worker's sockets (UDP and TCP on each address, per the config).
 * On error, err names the address and the reason. */
int worker_new(struct worker **out, int id, struct stund_shared *shared,
	       const struct config *cfg, char *err, size_t errlen);
int worker_start(struct worker *w);
/* Main thread: switch to cfg (a reference is taken) without dropping anyone. */
void worker_set_config(struct worker *w, const struct config *cfg);
/* Main thread: stop listening, drain open connections, end the loop. */
void worker_stop(struct worker *w);
void worker_join(struct worker *w);
void worker_free(struct worker *w);

/* Helpers for listeners (UDP, TCP, and the TLS/DTLS ones that follow the
 * same pattern): a non-blocking, close-on-exec SO_REUSEPORT socket bound to
 * addr; listening if SOCK_STREAM. */
int worker_socket(int type, const stun_sockaddr *addr, char *err, size_t errlen);

/* The drain is complete when no connection is left. */
void worker_maybe_finish(struct worker *w);

#endif
