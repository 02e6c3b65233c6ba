/* stun_stream: one TCP or TLS connection to the STUN/TURN server carrying
 * STUN messages and ChannelData (RFC 8489 s6.2.2, s6.2.3; RFC 8656 s3.1,
 * s12.5): a non-blocking connect, the TLS handshake (mbedTLS: the server's
 * certificate checked against a CA file and the host name, or not at all
 * when asked), a framing reader that cuts the byte stream into messages,
 * and a buffered writer that pads ChannelData to a multiple of 4 (s12.5).
 * stun_client uses it as its transport towards the server. */
#ifndef NATCLIENT_STUN_STREAM_H
#define NATCLIENT_STUN_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <ev.h>

#include "stun_msg.h"

/* Unsent bytes held at most; a send beyond it is dropped (-ENOBUFS), as a
 * datagram would be on a full path. */
#define STUN_STREAM_OUT_MAX (1024 * 1024)

struct stun_stream_opts {
	bool tls;
	const char *host;      /* the name the certificate must carry (TLS) */
	const char *ca_file;   /* PEM/DER CA certificates to trust (TLS) */
	bool insecure;         /* TLS without any certificate check */
};

struct stun_stream;
/* One whole message (STUN, or ChannelData without its padding). */
typedef void (*stun_stream_frame_cb)(void *arg, const uint8_t *buf, size_t len);
/* The connection ended (or never opened): err < 0, why says what happened
 * for a person. Not called by stun_stream_free(). The stream may be freed
 * from inside. */
typedef void (*stun_stream_closed_cb)(void *arg, int err, const char *why);

/* Start connecting to server. Sends made before the connection (and the
 * TLS handshake) is up wait in the output buffer. Fails at once (with a
 * message in err) on a local problem: no socket, an unreadable CA file. */
int stun_stream_open(struct ev_loop *loop, const stun_sockaddr *server,
		     const struct stun_stream_opts *o, stun_stream_frame_cb on_frame,
		     stun_stream_closed_cb on_closed, void *arg, struct stun_stream **out,
		     char *err, size_t cap);
void stun_stream_free(struct stun_stream *s);

/* Queue one message (a STUN message or ChannelData, as built for UDP). */
int stun_stream_send(struct stun_stream *s, const uint8_t *buf, size_t len);

int stun_stream_fd(const struct stun_stream *s);
bool stun_stream_is_tls(const struct stun_stream *s);
/* Connected (and the TLS handshake done). */
bool stun_stream_is_up(const struct stun_stream *s);

#endif
