/* turn: the TURN relay of one worker (RFC 8656, RFC 6156): the request
 * handlers (turn_methods.c), the packet path between clients and peers
 * (turn_relay.c) and the per-process state they share (turn.c).
 *
 * The server core hands TURN traffic here: requests of the TURN methods,
 * Send indications and ChannelData, each with the link it arrived on.
 * Relayed data goes back to the client over that link: a UDP socket (sent
 * here with sendmmsg), or the link's send function (a TCP connection, a
 * TLS or DTLS session). */
#ifndef STUND_TURN_H
#define STUND_TURN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stun_msg.h"

struct ev_loop;
struct config;
struct auth_ctx;
struct peer_filter;

struct stream_conn;

/* How to reach a client: its 5-tuple and the socket or session. */
struct turn_link {
	uint8_t proto;          /* of the 5-tuple: IPPROTO_UDP (UDP, DTLS) or
				 * IPPROTO_TCP (TCP, TLS) */
	int udp_fd;             /* plain UDP: the listening socket; else -1 */
	/* Otherwise: queue bytes (already framed) to the client; 0, or < 0
	 * when it cannot take them. May close conn, and so the allocation. */
	int (*send)(void *conn, const uint8_t *buf, size_t len);
	void *conn;             /* borrowed */
	struct stream_conn *stream; /* plain TCP only (RFC 6062 data connections) */
	stun_sockaddr client;   /* the client's (server-reflexive) address */
	stun_sockaddr local;    /* the server address it arrived on */
};

/* Shared by all workers of a process: relayed ports, quotas, limits. */
struct turn_shared;
int turn_shared_new(const struct config *cfg, struct turn_shared **out, char *err,
		    size_t errlen);
void turn_shared_free(struct turn_shared *sh);

/* The reason phrase of the 403 sent to TURN and rendezvous requests when
 * no credentials are configured and no-auth is not set. */
#define TURN_NO_CREDENTIALS_REASON \
	"Forbidden: this server has no credentials configured (user, userdb or " \
	"static-auth-secret) and does not run as an open relay (no-auth)"

/* Per worker. cfg is read at creation only (a reload does not change the
 * relay). auth may be NULL: no credentials configured; requests are
 * then refused unless no_auth (RFC 8656 s7.2 item 1 allows no
 * authentication only on a local network); filter may be NULL (no peer policy,
 * tests only). Both borrowed; swap them with turn_service_set_*. */
struct turn_service;
struct turn_service *turn_service_new(struct ev_loop *loop, struct turn_shared *sh,
				      const struct config *cfg);
void turn_service_free(struct turn_service *ts);
/* no_auth: without auth, serve requests (the operator's no-auth) rather
 * than refuse them with 403. */
void turn_service_set_auth(struct turn_service *ts, const struct auth_ctx *auth,
			   bool no_auth);
void turn_service_set_filter(struct turn_service *ts, const struct peer_filter *f);
/* On reload, in the worker: quotas, max-allocate-lifetime, max-bps and
 * socket buffers for allocations made from now on; existing ones keep
 * theirs. */
void turn_service_reload(struct turn_service *ts, const struct config *cfg);

/* A request of a TURN method: writes the response into out and returns its
 * length, or < 0 when no response is sent. */
int turn_handle_request(struct turn_service *ts, const struct turn_link *link,
			const struct stun_msg *req, uint8_t *out, size_t cap);
/* A Send indication (s11.2). */
void turn_handle_send(struct turn_service *ts, const struct turn_link *link,
		      const struct stun_msg *ind);
/* A ChannelData message (s12.6): buf[0..len) as received. */
void turn_handle_channel_data(struct turn_service *ts, const struct turn_link *link,
			      const uint8_t *buf, size_t len);
/* Send what turn_handle_send / turn_handle_channel_data queued from UDP
 * links: the listener calls it at the end of each receive batch, while the
 * batch's buffers (which the queued data points into) are still valid. */
void turn_flush(struct turn_service *ts);

/* A stream connection closed: its allocation goes with it (s3.1). */
void turn_link_closed(struct turn_service *ts, const struct turn_link *link);

/* Prometheus text for this worker's TURN metrics; returns bytes written. */
size_t turn_metrics_write(struct turn_service *ts, int worker, char *buf, size_t cap);

#endif
