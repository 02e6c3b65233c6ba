/* rendezvous_client: the peer side of the rendezvous (docs/PROTOCOL.md)
 * over one stun_client socket, so the registration flow is the socket the
 * ICE agent checks from and its keepalives hold that NAT mapping open.
 *
 *   register:  Register, then RdvRefresh every lifetime/3 (register again if
 *              the server forgot us), and a Binding indication every 15 s;
 *   offers:    Offer indications from the server, checked (integrity with
 *              our key, FINGERPRINT) and de-duplicated (UDP retransmissions),
 *              go to the on_offer callback; answer() or decline() replies;
 *   connect:   RdvConnect with our offer; the callback gets the answer.
 *
 * The owner routes the socket's other datagrams: rdv_client_new() installs
 * its own on_other callback on the stun_client and passes on what is not
 * the rendezvous's to the callback set with rdv_client_set_other(). */
#ifndef NATCLIENT_RENDEZVOUS_CLIENT_H
#define NATCLIENT_RENDEZVOUS_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "rdv_proto.h"
#include "stun_client.h"

#define RDV_KEEPALIVE_S 15.0   /* Binding indication on the registration flow */
#define RDV_SEEN_OFFERS 16     /* offer IDs remembered for de-duplication */

/* An offer or an answer (docs/PROTOCOL.md s3.1). */
struct rdv_session {
	struct rdv_candidate cand[RDV_MAX_CANDIDATES];
	unsigned n_cand;
	char ufrag[RDV_UFRAG_MAX + 1];
	char pwd[RDV_PWD_MAX + 1];
	uint64_t tie_breaker;
};

/* The outcome of a request. status: 0 success; a STUN error code (404
 * Unknown Peer, 408, 409 ID Taken, 401, ...); or -1 when the transaction
 * failed without a response (txn says why). */
struct rdv_result {
	int status;
	enum stun_txn_status txn;
	const char *reason;          /* borrowed, for messages */
	stun_sockaddr mapped;        /* XOR-MAPPED-ADDRESS: our flow as seen */
	bool has_mapped;
	uint32_t lifetime;           /* Register/RdvRefresh */
	stun_sockaddr peer;          /* RdvConnect: the peer's registration flow */
	bool has_peer;
	const struct rdv_session *answer; /* RdvConnect success */
};

/* An incoming offer. */
struct rdv_offer {
	uint8_t offer_id[RDV_OFFER_ID_LEN];
	char id[RDV_ID_MAX + 1];
	char from[RDV_USER_MAX + 1];  /* "" if the server did not say */
	stun_sockaddr peer;           /* the connecting peer's flow */
	bool has_peer;
	struct rdv_session session;
};

struct rdv_client;
typedef void (*rdv_result_cb)(struct rdv_client *rc, const struct rdv_result *r, void *arg);
typedef void (*rdv_offer_cb)(struct rdv_client *rc, const struct rdv_offer *o, void *arg);

/* sc, server and cred are borrowed and must outlive the rdv_client. */
int rdv_client_new(struct stun_client *sc, const stun_sockaddr *server, struct stun_cred *cred,
		   struct rdv_client **out);
/* Cancels what is in flight (callbacks do not run) and stops the timers;
 * it does not unregister (use rdv_client_unregister first for that). */
void rdv_client_free(struct rdv_client *rc);

/* What is not the rendezvous's goes here (the stun_client's other callback). */
void rdv_client_set_other(struct rdv_client *rc, stun_other_cb cb, void *arg);
void rdv_client_on_offer(struct rdv_client *rc, rdv_offer_cb cb, void *arg);
/* Feed a datagram by hand (when the owner keeps the stun_client's other
 * callback): true if it was a rendezvous message and was consumed. */
bool rdv_client_input(struct rdv_client *rc, const uint8_t *buf, size_t len,
		      const stun_sockaddr *from, const struct stun_msg *m);

/* Register id for lifetime seconds (0: the server's default) and keep it
 * registered. cb runs for the first outcome, and again if a later refresh
 * fails for good (status != 0). */
int rdv_client_register(struct rdv_client *rc, const char *id, uint32_t lifetime,
			rdv_result_cb cb, void *arg);
/* RdvRefresh with LIFETIME 0; stops refreshing. cb may be NULL. */
int rdv_client_unregister(struct rdv_client *rc, rdv_result_cb cb, void *arg);
/* Offer to the peer registered as id; cb gets the answer or the error. */
int rdv_client_connect(struct rdv_client *rc, const char *id, const struct rdv_session *offer,
		       rdv_result_cb cb, void *arg);
/* Reply to an offer; cb (may be NULL) gets the server's response. */
int rdv_client_answer(struct rdv_client *rc, const uint8_t offer_id[RDV_OFFER_ID_LEN],
		      const struct rdv_session *answer, rdv_result_cb cb, void *arg);
int rdv_client_decline(struct rdv_client *rc, const uint8_t offer_id[RDV_OFFER_ID_LEN],
		       uint16_t code, const char *reason, rdv_result_cb cb, void *arg);

/* Session <-> decoded attributes. */
void rdv_session_from_msg(struct rdv_session *s, const struct rdv_msg *r);
void rdv_session_to_msg(struct rdv_msg *r, const struct rdv_session *s);

#endif
