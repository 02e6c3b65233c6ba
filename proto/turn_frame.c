/* turn_frame: ChannelData (RFC 8656 s12.4) and stream framing (s12.5). */
#include "turn_frame.h"
#include "stun_msg.h"
#include "stun_rd.h"

/* s12.4: channel number, length, data. Over UDP the data may be followed
 * by up to 3 bytes of padding (s12.5), which are ignored. */
int turn_chandata_parse(const uint8_t *buf, size_t len, uint16_t *channel,
			const uint8_t **data, uint16_t *data_len)
{
	struct stun_rd r;
	uint16_t ch, dlen;
	const uint8_t *p;

	if (!buf || len < TURN_CHANNEL_HDR_LEN)
		return STUN_E_SHORT;
	stun_rd_init(&r, buf, len);
	ch = stun_rd_u16(&r);
	dlen = stun_rd_u16(&r);
	/* s12: 0x4000-0x4FFF; 0x5000-0xFFFF is reserved or not ChannelData. */
	if (ch < TURN_CHANNEL_MIN || ch > TURN_CHANNEL_MAX)
		return STUN_E_CHANNEL;
	p = stun_rd_take(&r, dlen);
	if (!p)
		return STUN_E_SHORT;
	if (stun_rd_left(&r) > 3)
		return STUN_E_LENGTH;
	if (channel)
		*channel = ch;
	if (data)
		*data = p;
	if (data_len)
		*data_len = dlen;
	return 0;
}

size_t turn_chandata_header(uint8_t hdr[TURN_CHANNEL_HDR_LEN], uint16_t channel, uint16_t data_len)
{
	stun_put16(hdr, channel);
	stun_put16(hdr + 2, data_len);
	return TURN_CHANNEL_HDR_LEN;
}

/* STUN over a stream: 20 + length (RFC 8489 s6.2.2); ChannelData over a
 * stream: 4 + length padded to a multiple of 4 (RFC 8656 s12.5 MUST). */
int turn_stream_frame_len(const uint8_t *buf, size_t avail, size_t *frame_len)
{
	uint16_t len;

	if (!buf || avail == 0)
		return STUN_E_SHORT;
	if (buf[0] > (TURN_CHANNEL_MAX >> 8))
		return buf[0] < 0x80 ? STUN_E_CHANNEL : STUN_E_NOT_STUN;
	if (avail < 4)
		return STUN_E_SHORT;
	len = stun_get16(buf + 2);
	if (buf[0] < 0x40) {
		if (len % 4)
			return STUN_E_LENGTH;
		*frame_len = (size_t)STUN_HDR_LEN + len;
		return 0;
	}
	*frame_len = TURN_CHANNEL_HDR_LEN + ((len + 3u) & ~3u);
	return 0;
}
