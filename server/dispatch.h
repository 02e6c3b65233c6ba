/* dispatch: one STUN message in, at most one message out. The pipeline:
 * decode (stun_msg_parse), class check, unknown comprehension-required
 * attributes (RFC 8489 s6.3.1), per-source rate limit, the method's
 * handler, then the amplification guard. Transport-independent: UDP, TCP,
 * TLS and DTLS listeners all call dispatch_stun().
 *
 * TURN and rendezvous methods plug in by adding a row to the method table
 * in dispatch.c. */
#ifndef STUND_DISPATCH_H
#define STUND_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stun_msg.h"
#include "worker.h"

/* Response size limit for unauthenticated requests over UDP (RFC 8489
 * s6.2.1 / RFC 5780 s10 amplification): at most twice the request plus
 * room for the usual Binding attributes. */
#define DISPATCH_AMP_FACTOR 2
#define DISPATCH_AMP_SLACK 160

struct stun_in {
	const uint8_t *buf;
	size_t len;
	const stun_sockaddr *peer;  /* source of the request */
	int laddr;                  /* where it arrived: index in the laddr set */
	enum transport tp;
	struct stream_conn *conn;   /* TCP/TLS: the connection; NULL otherwise */
	const stun_sockaddr *local; /* the exact local address (wildcard sockets,
				     * from IP_PKTINFO); NULL: the laddr's */
	/* TLS and DTLS: how to send to this peer later (TURN relays data to
	 * the client this way; NULL: TURN is not offered there) */
	int (*sess_send)(void *sess, const uint8_t *buf, size_t len);
	void *sess;
};

struct stun_out {
	uint8_t *buf;               /* caller's buffer */
	size_t cap;
	size_t len;                 /* 0: send nothing */
	int from;                   /* laddr to send from (UDP; preset to in->laddr) */
	stun_sockaddr to;           /* destination (preset to the peer) */
	bool authenticated;         /* exempt from the amplification guard */
};

/* Handle one whole STUN message (the first byte said STUN). */
void dispatch_stun(struct worker *w, const struct stun_in *in, struct stun_out *out);

/* For handlers: start a response of m's method (classic or not), add
 * SOFTWARE unless configured off; end with optional integrity key and
 * FINGERPRINT when the request had one; count errors by code. */
void dispatch_response_init(struct worker *w, struct stun_builder *b, const struct stun_msg *m,
			    struct stun_out *out, uint8_t cls);
void dispatch_response_software(struct worker *w, struct stun_builder *b);
void dispatch_response_end(struct worker *w, struct stun_builder *b, const struct stun_msg *m,
			   struct stun_out *out, const uint8_t *key, size_t keylen);
/* A complete error response (ERROR-CODE, SOFTWARE, FINGERPRINT). */
void dispatch_error(struct worker *w, const struct stun_msg *m, struct stun_out *out,
		    uint16_t code, const char *reason);
/* 420 with UNKNOWN-ATTRIBUTES (RFC 8489 s6.3.1, s14.9). */
void dispatch_unknown(struct worker *w, const struct stun_msg *m, struct stun_out *out,
		      const uint16_t *types, size_t n);

#define STUND_SOFTWARE "natkit stund " NATKIT_VERSION

#endif
