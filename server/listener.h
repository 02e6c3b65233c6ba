/* listener: the sockets of a worker. listener_udp.c reads datagrams in
 * recvmmsg batches and answers in sendmmsg batches; listener_tcp.c accepts
 * connections and frames STUN (and ChannelData) on the byte stream.
 *
 * A TLS or DTLS listener follows the same pattern: a socket per worker from
 * worker_socket(), an ev_io in the worker's loop, and for streams a
 * struct stream_rx fed with the decrypted bytes (stream_rx_feed), whose
 * frames go to dispatch_stun() with tp = TP_TLS. */
#ifndef STUND_LISTENER_H
#define STUND_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker.h"

/* --- UDP ----------------------------------------------------------------- */

#define UDP_BATCH 64
#define UDP_ROUNDS 8   /* full batches read per wakeup at most */
#define UDP_BUF 4096   /* a request with max-padding 1500 fits; bigger is truncated */

int udp_listener_open(struct udp_listener *u, struct worker *w, int laddr,
		      char *err, size_t errlen);
void udp_listener_start(struct udp_listener *u);
void udp_listener_close(struct udp_listener *u);
struct udp_batch *udp_batch_new(void);
void udp_batch_free(struct udp_batch *b);

/* --- streams ------------------------------------------------------------- */

/* Reassembly of frames from a byte stream (RFC 8656 s12.5 framing via
 * turn_stream_frame_len). */
#define STREAM_RX_INIT 2048
#define STREAM_FRAME_MAX 65560 /* a STUN message or a padded ChannelData */

struct stream_rx {
	uint8_t *buf;
	size_t len, cap;
	bool rfc5766_channels; /* frame 0x50-0x7F as ChannelData too */
};
/* on_frame returns 0 to go on, non-zero to stop (connection closing).
 * Returns 0, the callback's non-zero value, or a negative code for bytes
 * that are not a frame (the connection should be closed). */
typedef int (*stream_frame_fn)(void *arg, const uint8_t *frame, size_t len);
int stream_rx_feed(struct stream_rx *rx, const uint8_t *data, size_t n,
		   stream_frame_fn on_frame, void *arg);
void stream_rx_free(struct stream_rx *rx);

int tcp_listener_open(struct tcp_listener *t, struct worker *w, int laddr,
		      char *err, size_t errlen);
void tcp_listener_start(struct tcp_listener *t);
void tcp_listener_close(struct tcp_listener *t);

/* One TCP connection. */
struct stream_conn {
	struct worker *w;
	int fd;
	stun_sockaddr peer;
	stun_sockaddr local;     /* getsockname(): exact even on a wildcard listener */
	int laddr;
	ev_io rio, wio;
	ev_timer idle;
	struct stream_rx rx;
	uint8_t *out;            /* unsent response bytes */
	size_t out_len, out_cap;
	bool closing;            /* draining: close once out is flushed */
	/* Raw mode (an RFC 6062 client data connection, set by the TURN relay
	 * after ConnectionBind): received bytes go to raw() unframed. */
	void (*raw)(void *arg, const uint8_t *buf, size_t len);
	void *raw_arg;
	int handoff_to;          /* > 0: move to worker handoff_to - 1 after
				  * this frame (turn_dispatch_handoff) */
	struct stream_conn *prev, *next;
};

/* Queue len bytes on the connection (written now if possible). */
int stream_conn_send(struct stream_conn *c, const uint8_t *buf, size_t len);
void stream_conn_close(struct stream_conn *c);
/* Drain: stop reading; close once the pending output is written. */
void stream_conn_drain(struct stream_conn *c);
/* Another worker takes the connection: forget it here (its slot in the
 * max-connections count stays taken) and return its fd. */
int stream_conn_detach(struct stream_conn *c);
/* In the worker taking it over: a connection on fd, then frame as if it
 * had just arrived on it. */
void stream_conn_adopt(struct worker *w, int laddr, int fd, const stun_sockaddr *peer,
		       const uint8_t *frame, size_t len);

#endif
