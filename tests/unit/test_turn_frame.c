/* CUnit: proto/turn_frame (ChannelData, stream framing with RFC 8656
 * s12.5 padding). */
#include "turn_frame.h"
#include "stun_msg.h"
#include "unit_util.h"

#include <string.h>

static void test_chandata_roundtrip(void)
{
	uint8_t buf[64];
	const uint8_t *data = NULL;
	uint16_t ch = 0, dlen = 0;

	memcpy(buf + 4, "hello", 5);
	CU_ASSERT_EQUAL(turn_chandata_header(buf, 0x4001, 5), 4);
	CU_ASSERT(buf[0] == 0x40 && buf[1] == 0x01 && buf[2] == 0 && buf[3] == 5);
	CU_ASSERT_EQUAL(turn_chandata_parse(buf, 9, &ch, &data, &dlen), 0);
	CU_ASSERT_EQUAL(ch, 0x4001);
	CU_ASSERT_EQUAL(dlen, 5);
	CU_ASSERT(data == buf + 4);
	/* padded to 12 over UDP is fine; zero-length data too */
	CU_ASSERT_EQUAL(turn_chandata_parse(buf, 12, &ch, &data, &dlen), 0);
	turn_chandata_header(buf, TURN_CHANNEL_MAX, 0);
	CU_ASSERT_EQUAL(turn_chandata_parse(buf, 4, &ch, &data, &dlen), 0);
	CU_ASSERT_EQUAL(ch, TURN_CHANNEL_MAX);
	CU_ASSERT_EQUAL(dlen, 0);
}

static void test_chandata_rejects(void)
{
	uint8_t buf[64] = { 0 };
	uint16_t ch = 0x1234, dlen;
	const uint8_t *data;
	size_t i;

	turn_chandata_header(buf, 0x4000, 8);
	for (i = 0; i < 12; i++)
		CU_ASSERT_EQUAL(turn_chandata_parse(buf, i, &ch, &data, &dlen), STUN_E_SHORT);
	CU_ASSERT_EQUAL(ch, 0x1234); /* untouched on failure */
	CU_ASSERT_EQUAL(turn_chandata_parse(buf, 16, &ch, &data, &dlen), STUN_E_LENGTH);
	turn_chandata_header(buf, 0x3FFF, 0);
	CU_ASSERT_EQUAL(turn_chandata_parse(buf, 4, &ch, &data, &dlen), STUN_E_CHANNEL);
	turn_chandata_header(buf, 0x5000, 0);
	CU_ASSERT_EQUAL(turn_chandata_parse(buf, 4, &ch, &data, &dlen), STUN_E_CHANNEL);
}

static void test_stream_frames(void)
{
	static const uint8_t tid[12] = { 0 };
	uint8_t buf[128];
	struct stun_builder b;
	size_t fl = 0;
	int n;

	stun_build_init(&b, buf, sizeof(buf), STUN_METHOD_BINDING, STUN_CLASS_REQUEST, tid);
	stun_build_str(&b, STUN_ATTR_SOFTWARE, "x");
	n = stun_build_finish(&b);
	CU_ASSERT_EQUAL_FATAL(n, 28);
	CU_ASSERT_EQUAL(turn_stream_frame_len(buf, 3, &fl), STUN_E_SHORT);
	CU_ASSERT_EQUAL(turn_stream_frame_len(buf, 4, &fl), 0);
	CU_ASSERT_EQUAL(fl, 28);
	/* RFC 8656 s12.5: on a stream ChannelData is padded to 4 bytes. */
	turn_chandata_header(buf, 0x4000, 5);
	CU_ASSERT_EQUAL(turn_stream_frame_len(buf, 4, &fl), 0);
	CU_ASSERT_EQUAL(fl, 12);
	turn_chandata_header(buf, 0x4FFF, 8);
	CU_ASSERT_EQUAL(turn_stream_frame_len(buf, 4, &fl), 0);
	CU_ASSERT_EQUAL(fl, 12);
	turn_chandata_header(buf, 0x4000, 0);
	CU_ASSERT_EQUAL(turn_stream_frame_len(buf, 4, &fl), 0);
	CU_ASSERT_EQUAL(fl, 4);
}

static void test_stream_rejects(void)
{
	uint8_t buf[8] = { 0x00, 0x01, 0x00, 0x05 };
	size_t fl = 0;

	CU_ASSERT_EQUAL(turn_stream_frame_len(buf, 0, &fl), STUN_E_SHORT);
	CU_ASSERT_EQUAL(turn_stream_frame_len(buf, 4, &fl), STUN_E_LENGTH);
	buf[0] = 0x50;
	CU_ASSERT_EQUAL(turn_stream_frame_len(buf, 1, &fl), STUN_E_CHANNEL);
	buf[0] = 0x16; /* looks like TLS, top bits 00: framed as STUN, parse decides */
	buf[3] = 4;
	CU_ASSERT_EQUAL(turn_stream_frame_len(buf, 4, &fl), 0);
	buf[0] = 0x80;
	CU_ASSERT_EQUAL(turn_stream_frame_len(buf, 1, &fl), STUN_E_NOT_STUN);
	CU_ASSERT_EQUAL(fl, 24);
}

static const struct unit_case cases[] = {
	{ "ChannelData round trip", test_chandata_roundtrip },
	{ "ChannelData rejections", test_chandata_rejects },
	{ "stream framing with s12.5 padding", test_stream_frames },
	{ "stream framing rejections", test_stream_rejects },
	{ NULL, NULL },
};

int main(void)
{
	return unit_run("turn_frame", cases);
}
