/* rdv_service: the rendezvous methods of docs/PROTOCOL.md in stund:
 * Register, RdvRefresh, RdvConnect and Answer requests, and the Offer
 * indications the server sends to a registered peer over its registration
 * flow (retransmitted on UDP, RFC 8489 s6.2.1 timing).
 *
 * The registry (rendezvous.h) is shared by the workers. A pending
 * RdvConnect belongs to the worker that received it (its timers run in
 * that loop and its response leaves from that worker's socket or
 * connection). The Answer may arrive on any worker: it is handed over
 * through the offer index and the owner is woken with an ev_async. An
 * Offer for a peer registered over TCP on another worker is posted to that
 * worker's mailbox, since only the owner of a connection writes to it. */
#ifndef STUND_RDV_SERVICE_H
#define STUND_RDV_SERVICE_H

#include "dispatch.h"
#include "listener.h"
#include "worker.h"

/* Offer timing: RFC 8489 s6.2.1 with RTO 500 ms, Rc 4, Rm 8: sends at 0,
 * 0.5, 1.5, 3.5 s; the offer fails at 7.5 s (also over streams). */
#define RDV_OFFER_RTO 0.5
#define RDV_OFFER_RC 4
#define RDV_OFFER_RM 8
#define RDV_LINGER 40.0          /* Ti: the final RdvConnect response is kept */
#define RDV_PENDING_MAX 256      /* pending RdvConnect per worker */
#define RDV_WORKERS_MAX 256

/* Main thread, before the workers start / after they stopped. */
int rdv_service_setup(struct stund_shared *sh, const struct config *cfg, char *err,
		      size_t errlen);
void rdv_service_teardown(struct stund_shared *sh);

/* Worker: after its loop exists / before it is destroyed. */
int rdv_service_worker_start(struct worker *w);
void rdv_service_worker_free(struct worker *w);

/* Method rows (dispatch.c): Register, RdvRefresh, RdvConnect, Answer. */
void rdv_service_request(struct worker *w, const struct stun_msg *m, const struct stun_in *in,
			 struct stun_out *out);

/* A stream connection is closing: its registrations go, and pending
 * RdvConnect from it lose their way back. */
void rdv_service_conn_closed(struct stream_conn *c);
/* The same for a TLS or DTLS session (listener_tls.c). */
struct tls_sess;
void rdv_service_sess_closed(struct worker *w, struct tls_sess *s);

/* Prometheus text: registrations and pending offers (gauges), and the
 * counters of n workers summed. */
size_t rdv_service_metrics_write(struct worker *const *w, int n, char *buf, size_t cap);

#endif
