/* rdv_proto: the rendezvous protocol over STUN (docs/PROTOCOL.md). Custom
 * methods 0x0C0-0x0C4 and comprehension-optional attributes 0xC001-0xC007,
 * so a plain STUN/TURN server or client ignores them (RFC 8489 s14).
 *
 * The methods are in RFC 8489 s18.2's Expert Review range 0x080-0x0FF, not
 * 0x800-0x80F: RFC 8489 s18.2 limits methods to 0x000-0x0FF, and only those
 * keep the first byte of the message in 0-3, where RFC 7983 s7 (and
 * stun_demux()) look for STUN; 0x800 would start with 0x20.
 *
 * stun_msg_parse() skips comprehension-optional types it does not know, so
 * rdv_msg_decode() walks the already validated message a second time and
 * collects ours into a typed struct. Pure functions: no sockets, no clock,
 * no globals. */
#ifndef NATPROTO_RDV_PROTO_H
#define NATPROTO_RDV_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stun_msg.h"

/* Methods (docs/PROTOCOL.md s2). */
enum rdv_method {
	RDV_METHOD_REGISTER = 0x0C0, /* request: claim an ID on this flow */
	RDV_METHOD_REFRESH = 0x0C1,  /* request: keep it (LIFETIME 0: drop it) */
	RDV_METHOD_CONNECT = 0x0C2,  /* request: offer to an ID; response: answer */
	RDV_METHOD_OFFER = 0x0C3,    /* indication: server -> registered peer */
	RDV_METHOD_ANSWER = 0x0C4,   /* request: registered peer -> server */
};

/* Attributes (docs/PROTOCOL.md s3), all comprehension-optional. */
enum rdv_attr_type {
	RDV_ATTR_ID = 0xC001,          /* the rendezvous ID, 1..64 bytes */
	RDV_ATTR_CANDIDATE = 0xC002,   /* one ICE candidate; repeated */
	RDV_ATTR_ICE_UFRAG = 0xC003,   /* RFC 8445 s5.3 username fragment */
	RDV_ATTR_ICE_PWD = 0xC004,     /* RFC 8445 s5.3 password */
	RDV_ATTR_TIE_BREAKER = 0xC005, /* 64-bit ICE tie-breaker */
	RDV_ATTR_OFFER_ID = 0xC006,    /* 12 bytes naming one offer */
	RDV_ATTR_FROM_USER = 0xC007,   /* user name of the connecting peer */
};

/* Error codes (docs/PROTOCOL.md s5), in the STUN error space; none of them
 * is assigned by RFC 8489, RFC 8656 or RFC 8445. */
enum rdv_error {
	RDV_ERR_UNKNOWN_PEER = 404,  /* no registration under that ID */
	RDV_ERR_PEER_TIMEOUT = 408,  /* the registered peer did not answer */
	RDV_ERR_ID_TAKEN = 409,      /* the ID is held by another user */
	RDV_ERR_DECLINED = 480,      /* the registered peer refused the offer */
	RDV_ERR_QUOTA = 486,         /* this user holds too many IDs */
	RDV_ERR_FULL = 508,          /* the registry is full */
};
/* The reason phrase for a rendezvous code, else stun_error_reason()'s. */
const char *rdv_error_reason(uint16_t code);

/* Candidate types (RFC 8445 s5.1.1, plus the NAT lab's prediction). */
enum rdv_cand_type {
	RDV_CAND_HOST = 1,
	RDV_CAND_SRFLX = 2,
	RDV_CAND_PRFLX = 3,
	RDV_CAND_RELAY = 4,
	RDV_CAND_PREDICTED = 5,
};
#define RDV_TRANSPORT_UDP 17 /* IANA protocol numbers, as REQUESTED-TRANSPORT */
#define RDV_TRANSPORT_TCP 6

#define RDV_ID_MAX 64
#define RDV_FOUNDATION_MAX 32   /* RFC 8445 s5.1.1.3: 1*32 ice-char */
#define RDV_UFRAG_MIN 4         /* RFC 8445 s5.3: >= 24 bits; RFC 8839: 4..256 */
#define RDV_UFRAG_MAX 256
#define RDV_PWD_MIN 22          /* RFC 8445 s5.3: >= 128 bits; 22..256 */
#define RDV_PWD_MAX 256
#define RDV_USER_MAX 512        /* as USERNAME, RFC 8489 s14.3 */
#define RDV_MAX_CANDIDATES 16
#define RDV_OFFER_ID_LEN 12

/* Registration lifetimes in seconds (docs/PROTOCOL.md s4.1). */
#define RDV_LIFETIME_DEFAULT 120
#define RDV_LIFETIME_MIN 10
#define RDV_LIFETIME_MAX 3600

struct rdv_candidate {
	uint8_t type;       /* enum rdv_cand_type */
	uint8_t transport;  /* RDV_TRANSPORT_* */
	uint8_t component;  /* RFC 8445 component ID; 1 */
	uint32_t priority;  /* RFC 8445 s5.1.2 */
	stun_sockaddr addr;
	char foundation[RDV_FOUNDATION_MAX + 1];
};

/* Our attributes of one message; has_* / n_cand say what was present.
 * Only the first occurrence of a single-valued attribute counts. */
struct rdv_msg {
	bool has_id, has_ufrag, has_pwd, has_tie_breaker, has_offer_id, has_from;
	char id[RDV_ID_MAX + 1];
	struct rdv_candidate cand[RDV_MAX_CANDIDATES];
	uint8_t n_cand;
	char ufrag[RDV_UFRAG_MAX + 1];
	char pwd[RDV_PWD_MAX + 1];
	uint64_t tie_breaker;
	uint8_t offer_id[RDV_OFFER_ID_LEN];
	char from[RDV_USER_MAX + 1];
};

/* Decode our attributes of a message stun_msg_parse() accepted. Attributes
 * after MESSAGE-INTEGRITY(-SHA256) are not looked at (RFC 8489 s14.5).
 * Returns 0, STUN_E_ATTR_LENGTH / STUN_E_ATTR_VALUE for a malformed value,
 * STUN_E_TOO_MANY for more than RDV_MAX_CANDIDATES candidates. *r is only
 * meaningful on success. */
int rdv_msg_decode(struct rdv_msg *r, const struct stun_msg *m);

/* Is s[0..len) a valid ID: 1..RDV_ID_MAX of [A-Za-z0-9._@:-]? */
bool rdv_id_valid(const char *s, size_t len);
/* ice-char (RFC 8839 s5.4, as in RFC 8445 s5.3): ALPHA / DIGIT / "+" / "/". */
bool rdv_ice_chars(const char *s, size_t len);

/* Builders; errors are sticky in the builder like the stun_build_*. */
void rdv_build_id(struct stun_builder *b, const char *id);
void rdv_build_candidate(struct stun_builder *b, const struct rdv_candidate *c);
void rdv_build_offer_id(struct stun_builder *b, const uint8_t id[RDV_OFFER_ID_LEN]);
void rdv_build_from(struct stun_builder *b, const char *user, size_t len);
/* The session description of an offer or answer: every candidate, ufrag,
 * pwd and tie-breaker that r has. */
void rdv_build_session(struct stun_builder *b, const struct rdv_msg *r);

/* Names: "Register", "host", ... (NULL for an unknown value). */
const char *rdv_method_name(uint16_t method);
const char *rdv_cand_type_name(uint8_t type);
/* "host" -> RDV_CAND_HOST, or 0 if unknown. */
uint8_t rdv_cand_type_parse(const char *name);

#endif
