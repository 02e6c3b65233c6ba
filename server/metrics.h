/* metrics: per-worker counters and the Prometheus text endpoint.
 *
 * Each worker owns one struct metrics and is its only writer: increments
 * are relaxed atomic load+store (plain instructions, no lock prefix, no
 * locks on the packet path). The endpoint, in the main thread, sums the
 * workers' structs at scrape time with relaxed atomic loads. */
#ifndef STUND_METRICS_H
#define STUND_METRICS_H

#include <ev.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "stun_msg.h"

/* Why a packet, message or connection was not served normally. */
enum drop_reason {
	DROP_MALFORMED,          /* STUN header/attributes fail RFC 8489 s6.3 checks */
	DROP_NOT_STUN,           /* first byte neither STUN nor ChannelData */
	DROP_BAD_FINGERPRINT,    /* FINGERPRINT present and wrong */
	DROP_UNEXPECTED_RESPONSE,/* a success/error response sent to the server */
	DROP_INDICATION,         /* indication with no handler or unknown attributes */
	DROP_NO_ALLOCATION,      /* ChannelData with no allocation */
	DROP_RATE_LIMIT,         /* per-source request budget exhausted */
	DROP_REDIRECT_RATE_LIMIT,/* per-source CHANGE-REQUEST/RESPONSE-PORT/PADDING budget */
	DROP_AMPLIFICATION,      /* response would exceed the size limit */
	DROP_PADDING,            /* PADDING above max-padding (refused with 400) */
	DROP_TRUNCATED,          /* datagram larger than the receive buffer */
	DROP_SEND_ERROR,         /* sendmmsg/send failed */
	DROP_CONN_LIMIT,         /* connection refused: max-connections reached */
	DROP_IDLE_TIMEOUT,       /* stream closed: idle */
	DROP_BAD_FRAME,          /* stream bytes that are neither STUN nor ChannelData */
	DROP_OVERFLOW,           /* stream closed: peer does not read its responses */
	DROP__COUNT
};
const char *metrics_drop_name(enum drop_reason r);

/* Append printf-style text to buf[0..cap) holding n bytes; returns the new
 * length, at most cap (text that does not fit is cut). For every writer of
 * the metrics page. */
size_t metrics_appendf(char *buf, size_t cap, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
size_t metrics_vappendf(char *buf, size_t cap, size_t n, const char *fmt, va_list ap);

/* Methods 0x000-0x00F and 0x800-0x80F (rendezvous) get their own row. */
#define METRICS_METHODS 33
#define METRICS_METHOD_OTHER 32
#define METRICS_ERRCODES 20

struct metrics {
	uint64_t msgs[METRICS_METHODS][4]; /* by method and class received */
	uint64_t errors[METRICS_ERRCODES]; /* error responses sent, by code */
	uint64_t drops[DROP__COUNT];
	uint64_t rx_packets, rx_bytes, tx_packets, tx_bytes;
	uint64_t conns_total;
	int64_t conns_active;              /* gauge */
};

#define METRIC_ADD(field, n) \
	__atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
#define METRIC_INC(field) METRIC_ADD(field, 1)

static inline int metrics_method_index(uint16_t method)
{
	if (method < 0x010)
		return method;
	if (method >= 0x800 && method < 0x810)
		return 16 + (method - 0x800);
	return METRICS_METHOD_OTHER;
}

static inline void metrics_msg(struct metrics *m, uint16_t method, uint8_t cls)
{
	METRIC_INC(m->msgs[metrics_method_index(method)][cls & 3]);
}

static inline void metrics_drop(struct metrics *m, enum drop_reason r)
{
	METRIC_INC(m->drops[r]);
}

void metrics_error(struct metrics *m, uint16_t code);

/* Process-wide values owned by the main thread. */
struct metrics_process {
	uint64_t reloads_ok, reloads_rejected;
	double start_time;   /* unix time */
	int workers;
};

/* Render the sum of n workers' counters in Prometheus text format 0.0.4.
 * Returns the length written (truncated at cap). */
size_t metrics_render(char *buf, size_t cap, struct metrics *const *w, int n,
		      const struct metrics_process *p);

/* The HTTP endpoint: GET /metrics (any other path: 404). */
struct metrics_http;
typedef size_t (*metrics_render_fn)(void *arg, char *buf, size_t cap);
int metrics_http_start(struct metrics_http **out, struct ev_loop *loop, const stun_sockaddr *addr,
		       metrics_render_fn render, void *arg, char *err, size_t errlen);
void metrics_http_stop(struct metrics_http *h);

#endif
