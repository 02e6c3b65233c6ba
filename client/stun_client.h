/* stun_client: STUN request/response transactions over one UDP socket (or
 * one TCP/TLS connection to the server: stun_client_open_stream) on a
 * libev loop (RFC 8489 s6.2.1 retransmissions, s6.3 matching by transaction
 * ID, s9.2 long-term credentials). Many transactions may be in flight on the
 * same socket at once (the ICE agent needs that). Datagrams that are not a
 * response to one of our transactions (requests, indications, ChannelData,
 * application data) go to the owner's on_other callback. */
#ifndef NATCLIENT_STUN_CLIENT_H
#define NATCLIENT_STUN_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <ev.h>

#include "stun_auth.h"
#include "stun_msg.h"

/* Retransmission parameters (RFC 8489 s6.2.1): first RTO, Rc requests in
 * all, and Rm * RTO of waiting after the last one. */
struct stun_rto {
	unsigned rto_ms;
	unsigned rc;
	unsigned rm;
};

#define STUN_RTO_DEFAULT ((struct stun_rto){ 500, 7, 16 })
/* RFC 8489 s6.2.2: over TCP/TLS a request is sent once and fails after
 * Ti = 39.5 s without a response. */
#define STUN_STREAM_TI_MS 39500

/* How long to wait after send number i (0-based) before sending again, or,
 * after the last (i == rc - 1), before declaring the transaction failed. */
unsigned stun_rto_delay(const struct stun_rto *p, unsigned i);
/* Total time from the first send to the timeout. */
unsigned stun_rto_total(const struct stun_rto *p);

/* Long-term credentials and the state the server gave us (RFC 8489 s9.2).
 * One per server; shared by every transaction to it. */
struct stun_cred {
	char user[256];
	char password[256];
	char realm[256];  /* from the last 401/438 */
	char nonce[256];
	uint16_t pw_algs[STUN_MAX_PW_ALGS]; /* PASSWORD-ALGORITHMS to echo */
	unsigned n_pw_algs;
	int alg;          /* STUN_PWALG_*; 0 until the server challenged us */
	bool userhash;    /* s9.2.5: nonce cookie says username anonymity */
	bool mi256;       /* s9.2.5: server sent PASSWORD-ALGORITHMS */
	uint8_t key[STUN_KEY_MAX];
	int keylen;
};

void stun_cred_init(struct stun_cred *c, const char *user, const char *password);

/* Outcome of a transaction as its callback sees it. */
enum stun_txn_status {
	STUN_TXN_SUCCESS = 0,   /* success response (msg set) */
	STUN_TXN_ERROR_RESP,    /* error response (msg set, code in msg->error) */
	STUN_TXN_TIMEOUT,       /* Rc requests sent, Rm * RTO waited: nothing */
	STUN_TXN_INTEGRITY,     /* only responses failing integrity came back */
	STUN_TXN_AUTH_FAILED,   /* 401 again with the credentials we have */
	STUN_TXN_SEND_FAILED,   /* sendto() failed (errno in sys_err) */
	STUN_TXN_UNREACHABLE,   /* a hard ICMP error for the destination */
	STUN_TXN_CANCELLED,     /* stun_client_cancel() or stun_client_free() */
};

struct stun_txn_result {
	enum stun_txn_status status;
	const struct stun_msg *msg;  /* the response, when there is one */
	const stun_sockaddr *from;   /* where the response came from */
	uint16_t code;               /* error code of an error response / 401 */
	int sys_err;
	unsigned rtt_ms;             /* first send to response */
	unsigned sends;              /* requests sent in the last attempt */
};

struct stun_client;
typedef void (*stun_txn_cb)(struct stun_client *c, const struct stun_txn_result *r,
			    void *arg);
/* Adds the method's own attributes (before integrity and fingerprint). */
typedef void (*stun_attrs_fn)(struct stun_builder *b, void *arg);
/* A datagram that is not a response to one of our transactions. m is the
 * decoded message when it is STUN, else NULL. */
typedef void (*stun_other_cb)(struct stun_client *c, const uint8_t *buf, size_t len,
			      const stun_sockaddr *from, const struct stun_msg *m,
			      void *arg);

struct stun_request {
	uint16_t method;
	stun_sockaddr dest;
	stun_attrs_fn attrs;       /* may be NULL */
	void *attrs_arg;           /* must stay valid until the callback */
	struct stun_cred *cred;    /* borrowed; NULL: no long-term credentials */
	/* Short-term credentials (RFC 8489 s9.1, ICE checks): the attrs
	 * callback adds USERNAME; the client adds MESSAGE-INTEGRITY with this
	 * key (copied) and accepts only responses that carry it (s9.1.4). */
	const uint8_t *short_key;
	size_t short_keylen;
	/* Send through something else than the socket (e.g. a TURN relay:
	 * the response then comes back through stun_client_inject()). */
	int (*send)(void *ctx, const stun_sockaddr *dest, const uint8_t *buf, size_t len);
	void *send_ctx;
	const struct stun_rto *rto;/* NULL: the client's */
	bool fingerprint;          /* add FINGERPRINT (s14.7) */
	stun_txn_cb cb;
	void *arg;
};

struct stun_client_stats {
	uint64_t tx_requests, retransmits, rx_responses, rx_other;
	uint64_t rx_unmatched, rx_bad_integrity, rx_malformed, timeouts;
	uint64_t rx_icmp;
};

/* Open a UDP socket bound to bind_addr (port 0: the kernel picks). */
int stun_client_open(struct ev_loop *loop, const stun_sockaddr *bind_addr,
		     struct stun_client **out);
/* The same over a UDP socket opened and bound already (non-blocking);
 * the client owns fd from now on, also on failure (closed). For predict's
 * birthday: the socket whose mapping the peer found. */
int stun_client_adopt(struct ev_loop *loop, int fd, struct stun_client **out);
/* The same over one TCP or TLS connection to server (client/stun_stream.h;
 * RFC 8489 s6.2.2, RFC 8656 s3.1): requests go once (Ti, no
 * retransmissions) unless they travel on through something else (a
 * request's send hook: e.g. ICE checks through the TURN relay keep their
 * RTO, the peer's leg is UDP); datagrams to anything but the server fail
 * with -EPROTOTYPE; whatever the server sends comes `from` server. A
 * connection that fails or closes fails every transaction (SEND_FAILED)
 * and then calls the closed callback. err: a message for a person. */
struct stun_stream_opts;
int stun_client_open_stream(struct ev_loop *loop, const stun_sockaddr *server,
			    const struct stun_stream_opts *o, struct stun_client **out,
			    char *err, size_t cap);
bool stun_client_is_stream(const struct stun_client *c);
typedef void (*stun_closed_cb)(struct stun_client *c, int err, const char *why, void *arg);
void stun_client_set_closed(struct stun_client *c, stun_closed_cb cb, void *arg);
void stun_client_free(struct stun_client *c);

void stun_client_set_other(struct stun_client *c, stun_other_cb cb, void *arg);
void stun_client_set_rto(struct stun_client *c, const struct stun_rto *rto);
void stun_client_set_verbose(struct stun_client *c, int verbose);
int stun_client_fd(const struct stun_client *c);
const stun_sockaddr *stun_client_local(const struct stun_client *c);
/* A socket bound to a wildcard: the address it is known by (the route's
 * source towards the server) for stun_client_local(), with the socket's
 * port; stun_client_bound() still gives the socket's own address. */
void stun_client_set_local_ip(struct stun_client *c, const stun_sockaddr *ip);
const stun_sockaddr *stun_client_bound(const struct stun_client *c);
struct ev_loop *stun_client_loop(const struct stun_client *c);
const struct stun_client_stats *stun_client_stats(const struct stun_client *c);
unsigned stun_client_pending(const struct stun_client *c);

/* Start a transaction. tid_out (may be NULL) receives the transaction ID of
 * the first attempt; a 401/438 retry uses a new one (s9.2.5) but keeps the
 * same callback. Returns 0 or a negative error. */
int stun_client_request(struct stun_client *c, const struct stun_request *r,
			uint8_t tid_out[STUN_TID_LEN]);
/* Cancel the transaction whose current or first ID is tid; its callback
 * runs with STUN_TXN_CANCELLED. */
void stun_client_cancel(struct stun_client *c, const uint8_t tid[STUN_TID_LEN]);
/* Stop retransmitting the transaction tid but keep waiting for a response
 * until its timeout (RFC 8445 s7.3.1.4 "cancel"): a response still reports
 * success or error, to new_arg from now on; no response reports
 * STUN_TXN_CANCELLED, not a timeout. -ENOENT if there is no such one. */
int stun_client_quiet(struct stun_client *c, const uint8_t tid[STUN_TID_LEN], void *new_arg);

/* Send a datagram as is (indications, ChannelData, data). */
int stun_client_send(struct stun_client *c, const stun_sockaddr *dest, const void *buf,
		     size_t len);
/* Add USERNAME/USERHASH, REALM, NONCE, PASSWORD-ALGORITHM(S) and
 * MESSAGE-INTEGRITY(-SHA256) for cred, as on a request (for indications
 * that need them). Does nothing before the first challenge. */
void stun_client_add_auth(struct stun_builder *b, const struct stun_cred *cred);

/* Answer a request m (received from `to`) with a success or error
 * response: attrs adds the method's attributes (e.g. XOR-MAPPED-ADDRESS);
 * error_code 0 for success; key (may be NULL) adds MESSAGE-INTEGRITY;
 * FINGERPRINT always. */
int stun_client_respond(struct stun_client *c, const struct stun_msg *m,
			const stun_sockaddr *to, uint16_t error_code, stun_attrs_fn attrs,
			void *attrs_arg, const uint8_t *key, size_t keylen);

/* The same response, written into buf; returns its length or < 0. */
int stun_client_build_response(const struct stun_msg *m, uint16_t error_code,
			       stun_attrs_fn attrs, void *attrs_arg, const uint8_t *key,
			       size_t keylen, uint8_t *buf, size_t cap);

/* A datagram that arrived by another way (e.g. relayed by TURN from
 * `from`): if it is a response to one of our transactions, process it and
 * return true; else false (on_other is not called). */
bool stun_client_inject(struct stun_client *c, const uint8_t *buf, size_t len,
			const stun_sockaddr *from);

/* The local address the kernel would use towards dest, port 0: bind there
 * so that "mapped == local" means "no NAT" (RFC 5780 s4.3). */
int stun_route_source(const stun_sockaddr *dest, stun_sockaddr *out);

/* Name of a status, for messages a person reads. */
const char *stun_txn_status_str(enum stun_txn_status s);

#endif
