/* stun_msg: decode a STUN message once into struct stun_msg (RFC 8489 s5,
 * s6.3, s14), check FINGERPRINT and MESSAGE-INTEGRITY(-SHA256), name things. */
#include "stun_msg.h"
#include "stun_attr.h"
#include "stun_hmac.h"
#include "stun_rd.h"

#include <string.h>
#include <mbedtls/constant_time.h>
#include <mbedtls/md.h>
#include <zlib.h>

/* ---- header ---- */

/* RFC 8489 s5: M11..M0 and C1 C0 interleaved in the 14-bit type. */
static void split_type(uint16_t type, uint16_t *method, uint8_t *cls)
{
	*method = (uint16_t)((type & 0x000F) | (type & 0x00E0) >> 1 | (type & 0x3E00) >> 2);
	*cls = (uint8_t)((type & 0x0010) >> 4 | (type & 0x0100) >> 7);
}

static int parse_header(struct stun_msg *m, const uint8_t *buf, size_t len)
{
	struct stun_rd r;
	uint16_t type;

	if (!buf || len < STUN_HDR_LEN)
		return STUN_E_SHORT;
	stun_rd_init(&r, buf, len);
	type = stun_rd_u16(&r);
	/* RFC 8489 s6.3: the most significant 2 bits MUST be zero. */
	if (type & 0xC000)
		return STUN_E_NOT_STUN;
	m->length = stun_rd_u16(&r);
	m->cookie = stun_rd_u32(&r);
	memcpy(m->tid, stun_rd_take(&r, STUN_TID_LEN), STUN_TID_LEN);
	/* s5: the length is a multiple of 4 and covers the rest exactly. */
	if (m->length % 4 || (size_t)m->length + STUN_HDR_LEN != len)
		return STUN_E_LENGTH;
	split_type(type, &m->method, &m->cls);
	m->classic = m->cookie != STUN_MAGIC_COOKIE;
	/* RFC 3489 (no cookie) only had Binding requests and responses. */
	if (m->classic && m->method != STUN_METHOD_BINDING)
		return STUN_E_COOKIE;
	return 0;
}

/* ---- attributes ---- */

/* RFC 8489 s14.5: only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT may follow
 * MESSAGE-INTEGRITY; s14.6: only FINGERPRINT may follow
 * MESSAGE-INTEGRITY-SHA256; s14.7: FINGERPRINT is last. We reject rather
 * than ignore what follows, and reject repeats of the three. */
static int check_order(const struct stun_msg *m, uint16_t type)
{
	bool mi = type == STUN_ATTR_MESSAGE_INTEGRITY;
	bool mi256 = type == STUN_ATTR_MESSAGE_INTEGRITY_SHA256;
	bool fp = type == STUN_ATTR_FINGERPRINT;

	if (m->fp_off)
		return fp ? STUN_E_DUPLICATE : STUN_E_AFTER_FINGERPRINT;
	if ((mi && m->mi_off) || (mi256 && m->mi256_off))
		return STUN_E_DUPLICATE;
	if (m->mi256_off && !fp)
		return STUN_E_AFTER_INTEGRITY;
	if (m->mi_off && !fp && !mi256)
		return STUN_E_AFTER_INTEGRITY;
	return 0;
}

static void note_offsets(struct stun_msg *m, uint16_t type, uint32_t at)
{
	if (type == STUN_ATTR_MESSAGE_INTEGRITY)
		m->mi_off = at;
	else if (type == STUN_ATTR_MESSAGE_INTEGRITY_SHA256)
		m->mi256_off = at;
	else if (type == STUN_ATTR_FINGERPRINT)
		m->fp_off = at;
}

/* RFC 8489 s6.3.1: unknown comprehension-required types go into a 420. */
static void note_unknown(struct stun_msg *m, uint16_t type)
{
	if (type >= 0x8000 || m->n_unknown_required >= STUN_MAX_UNKNOWN)
		return;
	m->unknown_required[m->n_unknown_required++] = type;
}

static int parse_attr(struct stun_msg *m, uint16_t type, uint32_t at,
		      const uint8_t *val, uint16_t len)
{
	const struct stun_attr_def *d;
	int rc = check_order(m, type);

	if (rc)
		return rc;
	d = stun_attr_find(type);
	if (!d) {
		note_unknown(m, type);
		return 0;
	}
	/* s14.6: at least 16 bytes, at most 32, a multiple of 4. */
	if (type == STUN_ATTR_MESSAGE_INTEGRITY_SHA256 && len % 4)
		return STUN_E_ATTR_LENGTH;
	rc = stun_attr_decode(m, d, val, len);
	if (rc)
		return rc;
	note_offsets(m, type, at);
	return 0;
}

/* RFC 8489 s14: type, length, value padded to 4 bytes; nothing may run
 * past the end given by the header. */
static int parse_attrs(struct stun_msg *m)
{
	struct stun_rd r;

	stun_rd_init(&r, m->raw, m->raw_len);
	stun_rd_take(&r, STUN_HDR_LEN);
	while (stun_rd_left(&r) > 0) {
		uint32_t at = (uint32_t)r.off;
		uint16_t type = stun_rd_u16(&r);
		uint16_t len = stun_rd_u16(&r);
		const uint8_t *val = stun_rd_take(&r, len);
		int rc;

		stun_rd_take(&r, (4u - len % 4) % 4);
		if (!val || r.err)
			return STUN_E_ATTR_OVERRUN;
		rc = parse_attr(m, type, at, val, len);
		if (rc)
			return rc;
	}
	return 0;
}

/* RFC 8489 s14.7: CRC-32 of the message up to FINGERPRINT, XOR 0x5354554e. */
static int check_fingerprint(const struct stun_msg *m)
{
	uint32_t crc;

	if (!m->fp_off)
		return 0;
	/* RFC 3489 had no FINGERPRINT: its XOR assumes the magic cookie. */
	if (m->classic)
		return STUN_E_COOKIE;
	crc = (uint32_t)crc32(0L, m->raw, m->fp_off) ^ STUN_FINGERPRINT_XOR;
	return crc == m->fingerprint ? 0 : STUN_E_FINGERPRINT;
}

static void reset(struct stun_msg *m, const uint8_t *buf, size_t len)
{
	/* Only the bookkeeping the parser relies on; values are valid when
	 * their present bit is set. */
	m->raw = buf;
	m->raw_len = len;
	m->present = 0;
	m->mi_off = m->mi256_off = m->fp_off = 0;
	m->n_xor_peer = m->n_xor_relayed = 0;
	m->n_unknown_attrs = m->n_pw_algs = m->n_unknown_required = 0;
}

int stun_msg_parse(struct stun_msg *m, const uint8_t *buf, size_t len)
{
	int rc;

	if (!m)
		return STUN_E_ARG;
	reset(m, buf, len);
	rc = parse_header(m, buf, len);
	if (rc)
		return rc;
	rc = parse_attrs(m);
	if (rc)
		return rc;
	return check_fingerprint(m);
}

bool stun_msg_has(const struct stun_msg *m, uint16_t attr_type)
{
	const struct stun_attr_def *d = stun_attr_find(attr_type);

	return d && (m->present >> stun_attr_bit(d) & 1);
}

enum stun_demux stun_demux(const uint8_t *buf, size_t len)
{
	/* RFC 7983 s7: 0-3 STUN, 64-79 TURN channel. */
	if (!buf || len == 0)
		return STUN_DEMUX_OTHER;
	if (buf[0] <= 3)
		return STUN_DEMUX_STUN;
	if (buf[0] >= 64 && buf[0] <= 79)
		return STUN_DEMUX_CHANNEL;
	return STUN_DEMUX_OTHER;
}

/* ---- integrity ---- */

/* HMAC over msg[0..off) with the header's length field replaced by len
 * (RFC 8489 s14.5/s14.6: it points to the end of the integrity attribute).
 * Stack contexts (stun_hmac.h): no allocation per message. */
int stun_hmac_msg(int md_type, const uint8_t *key, size_t keylen, const uint8_t *msg,
		  size_t off, size_t len, uint8_t *out)
{
	uint8_t hdr[4] = { msg[0], msg[1], (uint8_t)(len >> 8), (uint8_t)len };
	struct stun_hmac c;
	int rc;

	if (md_type != MBEDTLS_MD_SHA1 && md_type != MBEDTLS_MD_SHA256)
		return STUN_E_CRYPTO;
	rc = stun_hmac_start(&c, md_type == MBEDTLS_MD_SHA1 ? STUN_HMAC_SHA1 : STUN_HMAC_SHA256,
			     key, keylen);
	if (rc)
		return rc == STUN_E_ARG ? STUN_E_CRYPTO : rc;
	rc = stun_hmac_update(&c, hdr, sizeof(hdr));
	if (!rc)
		rc = stun_hmac_update(&c, msg + 4, off - 4);
	if (rc) {
		uint8_t scratch[STUN_HMAC_MAX];

		stun_hmac_finish(&c, scratch); /* wipes the context */
		return rc;
	}
	return stun_hmac_finish(&c, out);
}

static int verify(const struct stun_msg *m, int md_type, uint32_t off,
		  const struct stun_bytes *want, const uint8_t *key, size_t keylen)
{
	uint8_t mac[32];
	size_t end = off + 4 + want->len;
	int rc;

	if (!off)
		return STUN_E_NO_INTEGRITY;
	if (!key && keylen)
		return STUN_E_ARG;
	rc = stun_hmac_msg(md_type, key, keylen, m->raw, off, end - STUN_HDR_LEN, mac);
	if (rc)
		return rc;
	/* constant time: the MAC must not leak through timing */
	return mbedtls_ct_memcmp(mac, want->p, want->len) ? STUN_E_INTEGRITY : 0;
}

/* RFC 8489 s14.5. */
int stun_msg_verify_mi(const struct stun_msg *m, const uint8_t *key, size_t keylen)
{
	return verify(m, MBEDTLS_MD_SHA1, m->mi_off, &m->mi, key, keylen);
}

/* RFC 8489 s14.6: the value is the first 16..32 bytes (a multiple of 4,
 * checked by the parser) of the HMAC-SHA256; compare what was sent. */
int stun_msg_verify_mi256(const struct stun_msg *m, const uint8_t *key, size_t keylen)
{
	return verify(m, MBEDTLS_MD_SHA256, m->mi256_off, &m->mi256, key, keylen);
}

/* ---- names ---- */

const char *stun_method_name(uint16_t method)
{
	switch (method) {
	case STUN_METHOD_BINDING: return "Binding";
	case STUN_METHOD_ALLOCATE: return "Allocate";
	case STUN_METHOD_REFRESH: return "Refresh";
	case STUN_METHOD_SEND: return "Send";
	case STUN_METHOD_DATA: return "Data";
	case STUN_METHOD_CREATE_PERMISSION: return "CreatePermission";
	case STUN_METHOD_CHANNEL_BIND: return "ChannelBind";
	case STUN_METHOD_CONNECT: return "Connect";
	case STUN_METHOD_CONNECTION_BIND: return "ConnectionBind";
	case STUN_METHOD_CONNECTION_ATTEMPT: return "ConnectionAttempt";
	}
	return "unknown-method";
}

const char *stun_attr_name(uint16_t type)
{
	const struct stun_attr_def *d = stun_attr_find(type);

	return d ? d->name : "unknown-attribute";
}

/* Indexed by -err (enum stun_err). */
static const char *const err_names[] = {
	[-STUN_OK] = "ok",
	[-STUN_E_SHORT] = "message too short",
	[-STUN_E_NOT_STUN] = "not a STUN message (top bits set)",
	[-STUN_E_LENGTH] = "bad length field",
	[-STUN_E_COOKIE] = "magic cookie missing",
	[-STUN_E_ATTR_OVERRUN] = "attribute runs past the message end",
	[-STUN_E_ATTR_LENGTH] = "attribute length out of bounds",
	[-STUN_E_ATTR_VALUE] = "attribute value malformed",
	[-STUN_E_AFTER_INTEGRITY] = "attribute after MESSAGE-INTEGRITY",
	[-STUN_E_AFTER_FINGERPRINT] = "attribute after FINGERPRINT",
	[-STUN_E_DUPLICATE] = "duplicate integrity or fingerprint attribute",
	[-STUN_E_TOO_MANY] = "too many repeated attributes",
	[-STUN_E_FINGERPRINT] = "FINGERPRINT mismatch",
	[-STUN_E_INTEGRITY] = "MESSAGE-INTEGRITY mismatch",
	[-STUN_E_NO_INTEGRITY] = "no MESSAGE-INTEGRITY",
	[-STUN_E_NOSPACE] = "buffer too small",
	[-STUN_E_ARG] = "bad argument",
	[-STUN_E_STALE] = "stale nonce or credential",
	[-STUN_E_CRYPTO] = "crypto library failure",
	[-STUN_E_SASLPREP] = "string rejected by SASLprep",
	[-STUN_E_CHANNEL] = "channel number out of range",
};

const char *stun_strerror(int err)
{
	size_t i = (size_t)-(long)err;

	if (err > 0 || i >= sizeof(err_names) / sizeof(err_names[0]) || !err_names[i])
		return "unknown error";
	return err_names[i];
}

struct reason_row {
	uint16_t code;
	const char *text;
};

/* RFC 8489 s14.8, RFC 8656 s18.11/s19, RFC 6062 s6.3, RFC 8445 s7.3.1.1. */
static const struct reason_row reasons[] = {
	{ STUN_ERR_TRY_ALTERNATE, "Try Alternate" },
	{ STUN_ERR_BAD_REQUEST, "Bad Request" },
	{ STUN_ERR_UNAUTHORIZED, "Unauthenticated" },
	{ STUN_ERR_FORBIDDEN, "Forbidden" },
	{ STUN_ERR_MOBILITY_FORBIDDEN, "Mobility Forbidden" },
	{ STUN_ERR_UNKNOWN_ATTRIBUTE, "Unknown Attribute" },
	{ STUN_ERR_ALLOCATION_MISMATCH, "Allocation Mismatch" },
	{ STUN_ERR_STALE_NONCE, "Stale Nonce" },
	{ STUN_ERR_ADDRESS_FAMILY, "Address Family not Supported" },
	{ STUN_ERR_WRONG_CREDENTIALS, "Wrong Credentials" },
	{ STUN_ERR_UNSUPPORTED_TRANSPORT, "Unsupported Transport Protocol" },
	{ STUN_ERR_PEER_ADDRESS_FAMILY, "Peer Address Family Mismatch" },
	{ STUN_ERR_CONNECTION_EXISTS, "Connection Already Exists" },
	{ STUN_ERR_CONNECTION_FAILURE, "Connection Timeout or Failure" },
	{ STUN_ERR_ALLOCATION_QUOTA, "Allocation Quota Reached" },
	{ STUN_ERR_ROLE_CONFLICT, "Role Conflict" },
	{ STUN_ERR_SERVER_ERROR, "Server Error" },
	{ STUN_ERR_INSUFFICIENT_CAPACITY, "Insufficient Capacity" },
};

const char *stun_error_reason(uint16_t code)
{
	size_t i;

	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (reasons[i].code == code)
			return reasons[i].text;
	return "Error";
}
