/* libFuzzer target for proto/: the STUN parser, and when a message parses,
 * integrity verification and a rebuild from the decoded struct that must
 * parse again with the same attributes; also the ChannelData parser and
 * the stream framer. Invariant violations abort. */
#include "stun_msg.h"
#include "stun_attr.h"
#include "turn_frame.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t key[] = "fuzz-key";
#define KEYLEN (sizeof(key) - 1)

static void check(bool ok)
{
	if (!ok)
		abort();
}

static bool first_of_type(const struct stun_msg *m, size_t off, uint16_t t)
{
	size_t o = STUN_HDR_LEN;

	while (o < off) {
		if ((uint16_t)(m->raw[o] << 8 | m->raw[o + 1]) == t)
			return false;
		o += 4 + (((size_t)(m->raw[o + 2] << 8 | m->raw[o + 3]) + 3) & ~(size_t)3);
	}
	return true;
}

/* Every known attribute in raw order, then the integrity/fingerprint ones
 * the original carried, recomputed with our key. */
static int rebuild(const struct stun_msg *m, uint8_t *out, size_t cap)
{
	struct stun_builder b;
	size_t off = STUN_HDR_LEN;

	stun_build_init(&b, out, cap, m->method, m->cls, m->tid);
	while (off < m->raw_len) {
		uint16_t t = (uint16_t)(m->raw[off] << 8 | m->raw[off + 1]);
		size_t l = (size_t)(m->raw[off + 2] << 8 | m->raw[off + 3]);

		if (t != STUN_ATTR_MESSAGE_INTEGRITY && t != STUN_ATTR_MESSAGE_INTEGRITY_SHA256 &&
		    t != STUN_ATTR_FINGERPRINT && first_of_type(m, off, t))
			stun_attr_encode(&b, m, t);
		off += 4 + ((l + 3) & ~(size_t)3);
	}
	if (m->mi_off)
		stun_build_mi(&b, key, KEYLEN);
	if (m->mi256_off)
		stun_build_mi256(&b, key, KEYLEN);
	if (m->fp_off)
		stun_build_fingerprint(&b);
	return stun_build_finish(&b);
}

static void check_rebuilt(const struct stun_msg *m, const uint8_t *out, int n)
{
	struct stun_msg r;
	size_t i;

	if (n == STUN_E_NOSPACE)
		return; /* grew past 65555 bytes with the added integrity */
	check(n >= STUN_HDR_LEN);
	check(stun_msg_parse(&r, out, (size_t)n) == 0);
	check(r.method == m->method && r.cls == m->cls);
	for (i = 0; i < stun_attr_count(); i++) {
		uint16_t t = stun_attr_at(i)->type;

		check(stun_msg_has(&r, t) == stun_msg_has(m, t));
	}
	check(r.n_xor_peer == m->n_xor_peer && r.n_xor_relayed == m->n_xor_relayed);
	if (m->mi_off)
		check(stun_msg_verify_mi(&r, key, KEYLEN) == 0);
	if (m->mi256_off)
		check(stun_msg_verify_mi256(&r, key, KEYLEN) == 0);
}

static void fuzz_frames(const uint8_t *data, size_t size)
{
	const uint8_t *d = NULL;
	uint16_t ch = 0, dl = 0;
	size_t fl = 0;

	if (turn_stream_frame_len(data, size, &fl) == 0)
		check(fl >= TURN_CHANNEL_HDR_LEN && fl <= STUN_MAX_MSG_LEN);
	if (turn_chandata_parse(data, size, &ch, &d, &dl) == 0)
		check(d == data + 4 && (size_t)dl + 4 <= size && ch >= TURN_CHANNEL_MIN &&
		      ch <= TURN_CHANNEL_MAX);
	(void)stun_demux(data, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[STUN_MAX_MSG_LEN + 128];
	struct stun_msg m;
	int rc;

	fuzz_frames(data, size);
	rc = stun_msg_parse(&m, data, size);
	check(rc <= 0 && strcmp(stun_strerror(rc), "unknown error") != 0);
	if (rc)
		return 0;
	check(m.raw == data && m.raw_len == size);
	(void)stun_msg_verify_mi(&m, key, KEYLEN);
	(void)stun_msg_verify_mi256(&m, key, KEYLEN);
	check_rebuilt(&m, out, rebuild(&m, out, sizeof(out)));
	return 0;
}
