/* tls: mbedTLS server sessions for STUN over TLS (RFC 8489 s6.2.2) and
 * DTLS (s6.2.2, RFC 6347), driven by a libev loop.
 *
 * Three objects:
 * - struct tls_ctx: certificate, private key, the TLS and the DTLS server
 *   configs, the DTLS cookie key and the RNG. Loaded from the `cert` and
 *   `pkey` files; immutable once loaded, refcounted and shareable between
 *   worker threads (Debian's mbedTLS has MBEDTLS_THREADING_PTHREAD, so the
 *   DRBG and the cookie key lock themselves). A reload builds a new one.
 * - struct tls_pool: the sessions of one listening socket, owned by a
 *   listener in one loop. It holds the current tls_ctx (new sessions use
 *   it; existing sessions keep the one they started with), caps the number
 *   of sessions, times out handshakes and idle sessions, and counts.
 *   A DTLS pool also owns the peer table of its shared UDP socket and
 *   answers ClientHellos without a valid cookie statelessly with a
 *   HelloVerifyRequest (RFC 6347 s4.2.1): no session exists before the
 *   peer has proven it receives at its source address.
 * - struct tls_sess: one TLS connection (owning its TCP fd) or one DTLS
 *   association (sending with sendto() on the pool's socket).
 *
 * Sessions end through the pool: after tls_sess_close(), an error, close
 * from the peer or a timeout, the pool calls ops->on_close on a later loop
 * iteration and frees the session right after. So a session pointer stays
 * valid inside every callback and until on_close returns. */
#ifndef STUND_TLS_H
#define STUND_TLS_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct tls_ctx;
struct tls_pool;
struct tls_sess;

/* Load cert_path (PEM or DER chain, leaf first) and key_path (unencrypted)
 * and build the configs. On failure returns a negative errno-style code and
 * writes a message naming the file and the reason into err. */
int tls_ctx_load(struct tls_ctx **out, const char *cert_path, const char *key_path,
		 char *err, size_t errlen);
struct tls_ctx *tls_ctx_ref(struct tls_ctx *c);
void tls_ctx_unref(struct tls_ctx *c);
/* The leaf certificate's subject ("CN=example"), for logs. */
const char *tls_ctx_subject(const struct tls_ctx *c);

enum tls_kind { TLS_KIND_STREAM, TLS_KIND_DGRAM };

enum tls_close_reason {
	TLS_CLOSE_PEER,              /* close_notify, EOF, or a DTLS client reconnect */
	TLS_CLOSE_LOCAL,             /* tls_sess_close() or tls_pool_free() */
	TLS_CLOSE_IDLE,              /* no application data for idle_timeout */
	TLS_CLOSE_HANDSHAKE_TIMEOUT, /* not established within handshake_timeout */
	TLS_CLOSE_HANDSHAKE_FAILED,  /* alert or protocol error during the handshake */
	TLS_CLOSE_ERROR,             /* transport or protocol error afterwards */
	TLS_CLOSE_OVERFLOW,          /* the peer does not read what we send */
};
const char *tls_close_reason_name(enum tls_close_reason why);

struct tls_pool_ops {
	/* Decrypted application data: bytes of the stream (TLS) or one whole
	 * datagram (DTLS). The buffer is valid during the call only. */
	void (*on_data)(struct tls_sess *s, const uint8_t *buf, size_t len);
	/* Optional: the handshake completed. */
	void (*on_open)(struct tls_sess *s);
	/* The session ends; it is freed when this returns. Optional. */
	void (*on_close)(struct tls_sess *s, enum tls_close_reason why);
	/* Optional: may a new session from peer be created? (A process-wide
	 * connection cap.) Every admitted session gets an on_close later. */
	bool (*admit)(struct tls_pool *p, const struct sockaddr *peer, socklen_t len);
};

struct tls_pool_cfg {
	enum tls_kind kind;
	unsigned max_sessions;     /* > 0 */
	double idle_timeout;       /* seconds without application data from the peer */
	double handshake_timeout;  /* seconds from the first byte to established */
	size_t max_pending;        /* TLS: bytes queued for a slow reader before
				    * the session is dropped; 0 = 256 KiB */
	uint16_t mtu;              /* DTLS: datagram size limit; 0 = 1400 */
	const struct tls_pool_ops *ops;
	void *arg;                 /* borrowed, for the callbacks: tls_pool_arg() */
};

struct tls_pool_stats {
	uint64_t handshakes;         /* completed */
	uint64_t handshake_failures;
	uint64_t handshake_timeouts;
	uint64_t idle_timeouts;
	uint64_t hello_verify_sent;  /* DTLS: HelloVerifyRequests sent */
	uint64_t refused_cap;        /* connections / ClientHellos refused: pool full */
	uint64_t dgram_dropped;      /* DTLS: datagrams no session or handshake took */
	uint64_t send_dropped;       /* DTLS: sendto() failed (e.g. EAGAIN) */
	uint64_t overflows;          /* TLS: sessions dropped for a full send queue */
	unsigned active;             /* sessions now, handshaking ones included */
};

/* A pool in loop, with ctx (a reference is taken). For TLS_KIND_DGRAM, fd
 * is the listening UDP socket (borrowed, non-blocking); for streams -1. */
int tls_pool_new(struct tls_pool **out, struct ev_loop *loop, struct tls_ctx *ctx,
		 int fd, const struct tls_pool_cfg *cfg);
/* Sends close_notify on every session, calls on_close(LOCAL) and frees. */
void tls_pool_free(struct tls_pool *p);
/* Reload: sessions created from now on use ctx (a reference is taken). */
void tls_pool_set_ctx(struct tls_pool *p, struct tls_ctx *ctx);
void tls_pool_set_timeouts(struct tls_pool *p, double idle_timeout, double handshake_timeout);
const struct tls_pool_stats *tls_pool_stats(const struct tls_pool *p);
void *tls_pool_arg(const struct tls_pool *p);

/* TLS: take an accepted TCP connection (made non-blocking here; the
 * session owns fd from now on and closes it). -EBUSY when the pool is
 * full, then fd stays the caller's to close. */
int tls_pool_accept(struct tls_pool *p, int fd, const struct sockaddr *peer,
		    socklen_t peer_len, struct tls_sess **out);
/* DTLS: one datagram read from the pool's socket, from peer. Feeds the
 * peer's session, or handles a ClientHello (cookie exchange; a session is
 * created when the cookie is valid and the pool has room). Returns 0, or a
 * negative code when the datagram was dropped. */
int tls_pool_dgram(struct tls_pool *p, const struct sockaddr *peer, socklen_t peer_len,
		   const uint8_t *buf, size_t len);

/* Encrypt and send application data. TLS: queued if the socket is full.
 * DTLS: one datagram (len <= tls_sess_max_dgram()). Returns 0 or a
 * negative code (the session is then closing). */
int tls_sess_send(struct tls_sess *s, const uint8_t *buf, size_t len);
/* Send close_notify and end the session (on_close follows later). */
void tls_sess_close(struct tls_sess *s);
bool tls_sess_established(const struct tls_sess *s);
size_t tls_sess_max_dgram(const struct tls_sess *s);
const struct sockaddr *tls_sess_peer(const struct tls_sess *s, socklen_t *len);
struct tls_pool *tls_sess_pool(const struct tls_sess *s);
void tls_sess_set_user(struct tls_sess *s, void *user);
void *tls_sess_user(const struct tls_sess *s);

#endif
