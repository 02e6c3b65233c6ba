/* stun_msg: STUN messages (RFC 8489) decoded once into a typed struct, and
 * built into a caller's buffer. Pure functions over byte buffers: no sockets,
 * no clock, no globals. */
#ifndef NATPROTO_STUN_MSG_H
#define NATPROTO_STUN_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define STUN_MAGIC_COOKIE 0x2112A442u
#define STUN_HDR_LEN 20
#define STUN_TID_LEN 12
#define STUN_FINGERPRINT_XOR 0x5354554Eu
#define STUN_MAX_MSG_LEN 65555 /* 20-byte header + 16-bit length */

/* Limits of the typed struct (RFC 8489 s14, RFC 8656 s18). */
#define STUN_MAX_PEER_ADDRS 8     /* XOR-PEER-ADDRESS repeated in CreatePermission */
#define STUN_MAX_RELAYED_ADDRS 2  /* dual-stack allocation: one per family */
#define STUN_MAX_UNKNOWN 16       /* listed in a 420 */
#define STUN_MAX_PW_ALGS 8

/* Classes (RFC 8489 s5). */
enum stun_class {
	STUN_CLASS_REQUEST = 0,
	STUN_CLASS_INDICATION = 1,
	STUN_CLASS_SUCCESS = 2,
	STUN_CLASS_ERROR = 3,
};

/* Methods (RFC 8489 s18.2, RFC 8656 s17, RFC 6062 s6.1). Methods are 12 bits
 * on the wire but RFC 8489 s18.2 registers only 0x000-0x0FF (a larger one
 * moves the first byte out of RFC 7983's STUN range). The rendezvous methods
 * of docs/PROTOCOL.md are 0x0C0-0x0C4, in proto/rdv_proto.h. */
enum stun_method {
	STUN_METHOD_BINDING = 0x001,
	STUN_METHOD_ALLOCATE = 0x003,
	STUN_METHOD_REFRESH = 0x004,
	STUN_METHOD_SEND = 0x006,
	STUN_METHOD_DATA = 0x007,
	STUN_METHOD_CREATE_PERMISSION = 0x008,
	STUN_METHOD_CHANNEL_BIND = 0x009,
	STUN_METHOD_CONNECT = 0x00A,
	STUN_METHOD_CONNECTION_BIND = 0x00B,
	STUN_METHOD_CONNECTION_ATTEMPT = 0x00C,
};

/* Attribute types on the wire. */
enum stun_attr_type {
	STUN_ATTR_MAPPED_ADDRESS = 0x0001,
	STUN_ATTR_CHANGE_REQUEST = 0x0003, /* RFC 5780 */
	STUN_ATTR_USERNAME = 0x0006,
	STUN_ATTR_MESSAGE_INTEGRITY = 0x0008,
	STUN_ATTR_ERROR_CODE = 0x0009,
	STUN_ATTR_UNKNOWN_ATTRIBUTES = 0x000A,
	STUN_ATTR_CHANNEL_NUMBER = 0x000C,
	STUN_ATTR_LIFETIME = 0x000D,
	STUN_ATTR_XOR_PEER_ADDRESS = 0x0012,
	STUN_ATTR_DATA = 0x0013,
	STUN_ATTR_REALM = 0x0014,
	STUN_ATTR_NONCE = 0x0015,
	STUN_ATTR_XOR_RELAYED_ADDRESS = 0x0016,
	STUN_ATTR_REQUESTED_ADDRESS_FAMILY = 0x0017,
	STUN_ATTR_EVEN_PORT = 0x0018,
	STUN_ATTR_REQUESTED_TRANSPORT = 0x0019,
	STUN_ATTR_DONT_FRAGMENT = 0x001A,
	STUN_ATTR_MESSAGE_INTEGRITY_SHA256 = 0x001C,
	STUN_ATTR_PASSWORD_ALGORITHM = 0x001D,
	STUN_ATTR_USERHASH = 0x001E,
	STUN_ATTR_XOR_MAPPED_ADDRESS = 0x0020,
	STUN_ATTR_RESERVATION_TOKEN = 0x0022,
	STUN_ATTR_PRIORITY = 0x0024,      /* RFC 8445 */
	STUN_ATTR_USE_CANDIDATE = 0x0025, /* RFC 8445 */
	STUN_ATTR_PADDING = 0x0026,       /* RFC 5780 */
	STUN_ATTR_RESPONSE_PORT = 0x0027, /* RFC 5780 */
	STUN_ATTR_CONNECTION_ID = 0x002A, /* RFC 6062 */
	STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY = 0x8000,
	STUN_ATTR_ADDRESS_ERROR_CODE = 0x8001,
	STUN_ATTR_PASSWORD_ALGORITHMS = 0x8002,
	STUN_ATTR_ALTERNATE_DOMAIN = 0x8003,
	STUN_ATTR_ICMP = 0x8004,
	STUN_ATTR_SOFTWARE = 0x8022,
	STUN_ATTR_ALTERNATE_SERVER = 0x8023,
	STUN_ATTR_FINGERPRINT = 0x8028,
	STUN_ATTR_ICE_CONTROLLED = 0x8029,  /* RFC 8445 */
	STUN_ATTR_ICE_CONTROLLING = 0x802A, /* RFC 8445 */
	STUN_ATTR_RESPONSE_ORIGIN = 0x802B, /* RFC 5780 */
	STUN_ATTR_OTHER_ADDRESS = 0x802C,   /* RFC 5780 */
};

/* CHANGE-REQUEST flags (RFC 5780 s7.2). */
#define STUN_CHANGE_IP 0x4u
#define STUN_CHANGE_PORT 0x2u

/* Password algorithms (RFC 8489 s18.5). */
enum stun_pw_alg { STUN_PWALG_MD5 = 1, STUN_PWALG_SHA256 = 2 };

/* Address families on the wire (RFC 8489 s14.1, RFC 8656 s18.3). */
#define STUN_FAMILY_IPV4 0x01
#define STUN_FAMILY_IPV6 0x02

/* Errors: 0 or one of these negative codes. stun_strerror() names each. */
enum stun_err {
	STUN_OK = 0,
	STUN_E_SHORT = -1,            /* shorter than the header / than a frame */
	STUN_E_NOT_STUN = -2,         /* top two bits not zero */
	STUN_E_LENGTH = -3,           /* length field not a multiple of 4 or != datagram */
	STUN_E_COOKIE = -4,           /* no magic cookie where one is required */
	STUN_E_ATTR_OVERRUN = -5,     /* attribute runs past the message end */
	STUN_E_ATTR_LENGTH = -6,      /* value length outside the attribute's bounds */
	STUN_E_ATTR_VALUE = -7,       /* value malformed (family, error class, ...) */
	STUN_E_AFTER_INTEGRITY = -8,  /* forbidden attribute after MESSAGE-INTEGRITY(-SHA256) */
	STUN_E_AFTER_FINGERPRINT = -9,/* anything after FINGERPRINT */
	STUN_E_DUPLICATE = -10,       /* repeated integrity/fingerprint attribute */
	STUN_E_TOO_MANY = -11,        /* more repeats than the struct holds */
	STUN_E_FINGERPRINT = -12,     /* FINGERPRINT present and wrong */
	STUN_E_INTEGRITY = -13,       /* MESSAGE-INTEGRITY(-SHA256) wrong */
	STUN_E_NO_INTEGRITY = -14,    /* integrity asked for but absent */
	STUN_E_NOSPACE = -15,         /* builder: buffer too small */
	STUN_E_ARG = -16,             /* bad argument from the caller */
	STUN_E_STALE = -17,           /* nonce or REST credential expired */
	STUN_E_CRYPTO = -18,          /* a crypto library call failed */
	STUN_E_SASLPREP = -19,        /* a string SASLprep/OpaqueString rejects */
	STUN_E_CHANNEL = -20,         /* ChannelData number outside 0x4000-0x4FFF */
};
const char *stun_strerror(int err);

/* A socket address usable directly with sendto()/bind(). */
typedef union stun_sockaddr {
	struct sockaddr sa;
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;
} stun_sockaddr;

/* A view into the message buffer (borrowed: valid while the buffer is). */
struct stun_bytes {
	const uint8_t *p;
	uint16_t len;
};

struct stun_error_code {
	uint16_t code; /* 300..699 */
	struct stun_bytes reason;
};

struct stun_pw_alg_entry {
	uint16_t alg;
	struct stun_bytes params;
};

struct stun_address_error {
	uint8_t family; /* STUN_FAMILY_* */
	uint16_t code;
	struct stun_bytes reason;
};

/* A decoded message. Fields are valid when stun_msg_has() says the
 * attribute is present; only the first occurrence of a single-valued
 * attribute counts (RFC 8489 s14). Borrowed views point into raw. */
struct stun_msg {
	const uint8_t *raw; /* borrowed: the whole message */
	size_t raw_len;
	uint16_t method;
	uint8_t cls;
	uint16_t length;    /* header length field */
	uint32_t cookie;    /* STUN_MAGIC_COOKIE unless classic */
	uint8_t tid[STUN_TID_LEN];
	bool classic;       /* RFC 3489: no magic cookie; tid is cookie+tid */
	uint64_t present;   /* internal: one bit per known attribute */

	/* Offsets within raw of the integrity attributes' headers; 0 = absent. */
	uint32_t mi_off, mi256_off, fp_off;

	stun_sockaddr mapped, xor_mapped, alternate_server;
	stun_sockaddr response_origin, other_address;
	stun_sockaddr xor_peer[STUN_MAX_PEER_ADDRS];
	uint8_t n_xor_peer;
	stun_sockaddr xor_relayed[STUN_MAX_RELAYED_ADDRS];
	uint8_t n_xor_relayed;

	struct stun_bytes username, userhash, realm, nonce, software;
	struct stun_bytes alternate_domain, data, padding;
	struct stun_bytes mi, mi256; /* the HMAC values as received */
	uint32_t fingerprint;
	struct stun_error_code error;
	uint16_t unknown_attrs[STUN_MAX_UNKNOWN]; /* UNKNOWN-ATTRIBUTES as received */
	uint8_t n_unknown_attrs;
	struct stun_pw_alg_entry pw_algs[STUN_MAX_PW_ALGS]; /* PASSWORD-ALGORITHMS */
	uint8_t n_pw_algs;
	struct stun_pw_alg_entry pw_alg; /* PASSWORD-ALGORITHM */

	uint32_t change_request; /* STUN_CHANGE_* bits */
	uint16_t response_port;
	uint16_t channel_number;
	uint32_t lifetime;
	uint8_t requested_family;  /* STUN_FAMILY_* */
	uint8_t additional_family; /* STUN_FAMILY_* */
	struct stun_address_error address_error;
	bool even_port_reserve;    /* EVEN-PORT R bit */
	uint8_t requested_transport; /* IANA protocol number: 17 UDP, 6 TCP */
	uint64_t reservation_token;
	uint8_t icmp_type, icmp_code; /* ICMP (RFC 8656 s18.13) */
	uint32_t icmp_data;
	uint32_t connection_id;
	uint32_t priority;
	uint64_t ice_controlled, ice_controlling; /* tie-breakers */

	/* Comprehension-required types this codec does not know (for a 420,
	 * RFC 8489 s6.3.1). Comprehension-optional unknowns are ignored. */
	uint16_t unknown_required[STUN_MAX_UNKNOWN];
	uint8_t n_unknown_required;
};

/* First-byte demultiplexing of a datagram or stream (RFC 7983 style). */
enum stun_demux { STUN_DEMUX_STUN, STUN_DEMUX_CHANNEL, STUN_DEMUX_OTHER };
enum stun_demux stun_demux(const uint8_t *buf, size_t len);

/* Decode buf[0..len) (one whole message) into *m. Checks the structure
 * (RFC 8489 s6.3) and, if present, FINGERPRINT (s14.7). Classic RFC 3489
 * messages are accepted with m->classic set. m borrows buf. Allocates
 * nothing. On error *m holds nothing meaningful. */
int stun_msg_parse(struct stun_msg *m, const uint8_t *buf, size_t len);

/* Is the attribute of this wire type present in the decoded message? */
bool stun_msg_has(const struct stun_msg *m, uint16_t attr_type);

/* Verify MESSAGE-INTEGRITY (HMAC-SHA1, s14.5) or MESSAGE-INTEGRITY-SHA256
 * (HMAC-SHA256, possibly truncated, s14.6) with the given key. */
int stun_msg_verify_mi(const struct stun_msg *m, const uint8_t *key, size_t keylen);
int stun_msg_verify_mi256(const struct stun_msg *m, const uint8_t *key, size_t keylen);

/* Name of a method / attribute type for logs ("Binding", "XOR-MAPPED-ADDRESS"). */
const char *stun_method_name(uint16_t method);
const char *stun_attr_name(uint16_t type);

/* Builder: writes a message into a caller's buffer. Errors are sticky: after
 * the first failure every call is a no-op and stun_build_finish() returns it. */
struct stun_builder {
	uint8_t *buf;
	size_t cap;
	size_t len;
	int err;
	bool classic;
};

void stun_build_init(struct stun_builder *b, uint8_t *buf, size_t cap,
		     uint16_t method, uint8_t cls, const uint8_t tid[STUN_TID_LEN]);
/* RFC 3489 response: the 16-byte transaction ID of the request, no cookie. */
void stun_build_init_classic(struct stun_builder *b, uint8_t *buf, size_t cap,
			     uint16_t method, uint8_t cls, const uint8_t tid16[16]);
void stun_build_bytes(struct stun_builder *b, uint16_t type, const void *v, size_t len);
/* As stun_build_bytes, with padding bytes of value pad (RFC 8489 s14: any
 * value; RFC 5769 vectors pad with spaces). */
void stun_build_bytes_pad(struct stun_builder *b, uint16_t type, const void *v,
			  size_t len, uint8_t pad);
void stun_build_str(struct stun_builder *b, uint16_t type, const char *s);
void stun_build_empty(struct stun_builder *b, uint16_t type);
void stun_build_u8(struct stun_builder *b, uint16_t type, uint8_t v);   /* v + 3 zero bytes */
void stun_build_u16(struct stun_builder *b, uint16_t type, uint16_t v); /* v + 2 zero bytes */
void stun_build_u32(struct stun_builder *b, uint16_t type, uint32_t v);
void stun_build_u64(struct stun_builder *b, uint16_t type, uint64_t v);
void stun_build_addr(struct stun_builder *b, uint16_t type, const stun_sockaddr *a);
void stun_build_xor_addr(struct stun_builder *b, uint16_t type, const stun_sockaddr *a);
/* ERROR-CODE; reason NULL takes the standard phrase from stun_error_reason(). */
void stun_build_error(struct stun_builder *b, uint16_t code, const char *reason);
void stun_build_address_error(struct stun_builder *b, uint8_t family, uint16_t code, const char *reason);
void stun_build_unknown(struct stun_builder *b, const uint16_t *types, size_t n);
void stun_build_pw_algs(struct stun_builder *b, const uint16_t *algs, size_t n);
/* Reserve a DATA-like attribute of len bytes and return where to write it. */
uint8_t *stun_build_reserve(struct stun_builder *b, uint16_t type, size_t len);
/* Integrity and fingerprint, in that order, last (RFC 8489 s14.5-14.7). */
void stun_build_mi(struct stun_builder *b, const uint8_t *key, size_t keylen);
void stun_build_mi256(struct stun_builder *b, const uint8_t *key, size_t keylen);
void stun_build_fingerprint(struct stun_builder *b);
/* Returns the message length, or a negative stun_err. */
int stun_build_finish(struct stun_builder *b);

/* STUN error codes named once (RFC 8489 s14.8, RFC 8656 s18.11/s20,
 * RFC 6062 s6.3, RFC 8445 s7.3.1.1). */
enum stun_error_code_value {
	STUN_ERR_TRY_ALTERNATE = 300,
	STUN_ERR_BAD_REQUEST = 400,
	STUN_ERR_UNAUTHORIZED = 401,
	STUN_ERR_FORBIDDEN = 403,
	STUN_ERR_MOBILITY_FORBIDDEN = 405,
	STUN_ERR_UNKNOWN_ATTRIBUTE = 420,
	STUN_ERR_ALLOCATION_MISMATCH = 437,
	STUN_ERR_STALE_NONCE = 438,
	STUN_ERR_ADDRESS_FAMILY = 440,
	STUN_ERR_WRONG_CREDENTIALS = 441,
	STUN_ERR_UNSUPPORTED_TRANSPORT = 442,
	STUN_ERR_PEER_ADDRESS_FAMILY = 443,
	STUN_ERR_CONNECTION_EXISTS = 446,
	STUN_ERR_CONNECTION_FAILURE = 447,
	STUN_ERR_ALLOCATION_QUOTA = 486,
	STUN_ERR_ROLE_CONFLICT = 487,
	STUN_ERR_SERVER_ERROR = 500,
	STUN_ERR_INSUFFICIENT_CAPACITY = 508,
};
const char *stun_error_reason(uint16_t code);

/* Helpers on addresses. */
int stun_sockaddr_family(const stun_sockaddr *a); /* AF_INET / AF_INET6 */
socklen_t stun_sockaddr_len(const stun_sockaddr *a);
uint16_t stun_sockaddr_port(const stun_sockaddr *a);
void stun_sockaddr_set_port(stun_sockaddr *a, uint16_t port);
bool stun_sockaddr_equal(const stun_sockaddr *a, const stun_sockaddr *b); /* ip + port */
/* "1.2.3.4:5" or "[::1]:5"; returns buf. */
char *stun_sockaddr_str(const stun_sockaddr *a, char *buf, size_t cap);
/* Parse "1.2.3.4:5", "[::1]:5", "1.2.3.4" (port = default_port). */
int stun_sockaddr_parse(stun_sockaddr *a, const char *s, uint16_t default_port);

#endif
