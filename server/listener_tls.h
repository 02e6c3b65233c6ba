/* listener_tls / listener_dtls: STUN over TLS (TCP) and over DTLS (UDP) on
 * tls-listening-port (RFC 8489 s6.2.2: 5349 for both), on every listening
 * IP, IPv4 and IPv6, answered through dispatch_stun() like plain UDP/TCP.
 * They follow listener_tcp.c / listener_udp.c: per worker, SO_REUSEPORT
 * sockets from worker_socket() and ev_io watchers in the worker's loop; the
 * TLS machinery (sessions, cookies, timeouts) is server/tls.c.
 *
 * TLS and DTLS are on when cert and pkey are set (and not no-tls/no-dtls).
 *
 * Hooks, one call each, from the server core:
 *   main:   tls_shared_setup() before the workers, tls_shared_reload() on
 *           SIGHUP before handing the new config out (a certificate that
 *           does not load rejects the reload), tls_shared_teardown() last;
 *           tls_metrics_write() in the metrics page.
 *   worker: tls_worker_open() with the other sockets, tls_worker_start()
 *           once the loop exists, tls_worker_reload() when a new config is
 *           in use, tls_worker_drain() on SIGTERM, tls_worker_free().
 * A reload gives new connections the new certificate; existing ones keep
 * the one they were made with. */
#ifndef STUND_LISTENER_TLS_H
#define STUND_LISTENER_TLS_H

#include <stddef.h>

#include "config.h"
#include "worker.h"

#define TLS_HANDSHAKE_TIMEOUT 10.0 /* seconds from accept / cookie to established */

/* Process-wide: the certificate context in use. */
int tls_shared_setup(struct stund_shared *sh, const struct config *cfg, char *err, size_t errlen);
int tls_shared_reload(struct stund_shared *sh, const struct config *cfg, char *err, size_t errlen);
void tls_shared_teardown(struct stund_shared *sh);
/* --check-config: do cert and pkey load and match? */
int tls_config_check(const struct config *cfg, char *err, size_t errlen);

int tls_worker_open(struct worker *w, char *err, size_t errlen);
int tls_worker_start(struct worker *w);
void tls_worker_reload(struct worker *w);
void tls_worker_drain(struct worker *w);
void tls_worker_free(struct worker *w);

/* Prometheus text for the TLS/DTLS counters of n workers. */
size_t tls_metrics_write(struct worker *const *w, int n, char *buf, size_t cap);

/* --- internal to listener_tls.c / listener_dtls.c ------------------------- */

struct tls_pool;
struct tls_sess;

struct tls_listener {
	struct tls_worker *tw;     /* borrowed: the owner */
	enum transport tp;         /* TP_TLS or TP_DTLS */
	int fd;                    /* -1: not open */
	int laddr;                 /* laddr of the same IP, for dispatch */
	stun_sockaddr addr;
	ev_io io;
	struct tls_pool *pool;
};

struct tls_worker {
	struct worker *w;          /* borrowed */
	unsigned generation;       /* of the certificate context the pools use */
	struct tls_listener tls[CFG_MAX_LISTEN * 2];
	struct tls_listener dtls[CFG_MAX_LISTEN * 2];
	int n;                     /* listening IPs */
	struct dtls_batch *batch;  /* DTLS receive buffers */
};

/* Shared by both listeners (listener_tls.c). */
struct tls_ctx *tls_shared_ctx(struct stund_shared *sh, unsigned *generation);
void tls_worker_sync(struct tls_worker *tw);
int tls_listener_pool(struct tls_listener *l);
void tls_listener_close(struct tls_listener *l);
void tls_reply(struct tls_sess *s, struct tls_listener *l, const stun_sockaddr *peer,
	       const uint8_t *frame, size_t len);

/* listener_dtls.c */
int dtls_listener_start(struct tls_listener *l);
void dtls_on_data(struct tls_sess *s, const uint8_t *buf, size_t len);
struct dtls_batch *dtls_batch_new(void);
void dtls_batch_free(struct dtls_batch *b);

#endif
