/* turn_frame: ChannelData (RFC 8656 s12.4) and framing of STUN and
 * ChannelData on TCP/TLS streams (s12.5). */
#ifndef NATPROTO_TURN_FRAME_H
#define NATPROTO_TURN_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define TURN_CHANNEL_MIN 0x4000
#define TURN_CHANNEL_MAX 0x4FFF
#define TURN_CHANNEL_HDR_LEN 4

/* Parse one ChannelData message from a datagram. */
int turn_chandata_parse(const uint8_t *buf, size_t len, uint16_t *channel,
			const uint8_t **data, uint16_t *data_len);
/* Write the 4-byte header in front of data (which the caller placed at
 * hdr + 4, using its buffer's headroom). Returns 4. */
size_t turn_chandata_header(uint8_t hdr[TURN_CHANNEL_HDR_LEN], uint16_t channel, uint16_t data_len);

/* On a stream: how long is the frame starting at buf? 0 and *frame_len set
 * when known (STUN: 20 + length; ChannelData: 4 + length rounded up to a
 * multiple of 4 per s12.5), STUN_E_SHORT when more bytes are needed to tell,
 * another error for bytes that are neither. */
int turn_stream_frame_len(const uint8_t *buf, size_t avail, size_t *frame_len);

#endif
