/* metrics: counters summed at scrape time, Prometheus text over HTTP/1.0. */
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

static const char *const drop_names[DROP__COUNT] = {
	[DROP_MALFORMED] = "malformed",
	[DROP_NOT_STUN] = "not_stun",
	[DROP_BAD_FINGERPRINT] = "bad_fingerprint",
	[DROP_UNEXPECTED_RESPONSE] = "unexpected_response",
	[DROP_INDICATION] = "indication",
	[DROP_NO_ALLOCATION] = "no_allocation",
	[DROP_RATE_LIMIT] = "rate_limit",
	[DROP_REDIRECT_RATE_LIMIT] = "redirect_rate_limit",
	[DROP_AMPLIFICATION] = "amplification",
	[DROP_PADDING] = "padding_too_large",
	[DROP_TRUNCATED] = "truncated",
	[DROP_SEND_ERROR] = "send_error",
	[DROP_CONN_LIMIT] = "connection_limit",
	[DROP_IDLE_TIMEOUT] = "idle_timeout",
	[DROP_BAD_FRAME] = "bad_frame",
	[DROP_OVERFLOW] = "output_overflow",
};

const char *metrics_drop_name(enum drop_reason r)
{
	return r < DROP__COUNT ? drop_names[r] : "?";
}

/* Error codes with their own row; the last row is "other". */
static const uint16_t err_codes[METRICS_ERRCODES - 1] = {
	300, 400, 401, 403, 405, 420, 437, 438, 440, 441,
	442, 443, 446, 447, 486, 487, 500, 508, 404,
};

void metrics_error(struct metrics *m, uint16_t code)
{
	int i;

	for (i = 0; i < METRICS_ERRCODES - 1; i++)
		if (err_codes[i] == code)
			break;
	METRIC_INC(m->errors[i]);
}

static const char *const class_names[4] = { "request", "indication", "success", "error" };

static uint64_t ld(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

struct out {
	char *buf;
	size_t cap, len;
};

size_t metrics_vappendf(char *buf, size_t cap, size_t n, const char *fmt, va_list ap)
{
	int r;

	if (n >= cap)
		return cap;
	r = vsnprintf(buf + n, cap - n, fmt, ap);
	if (r > 0)
		n = (size_t)r < cap - n ? n + (size_t)r : cap;
	return n;
}

size_t metrics_appendf(char *buf, size_t cap, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	n = metrics_vappendf(buf, cap, n, fmt, ap);
	va_end(ap);
	return n;
}

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	o->len = metrics_vappendf(o->buf, o->cap, o->len, fmt, ap);
	va_end(ap);
}

static uint16_t method_of_index(int i)
{
	return i < 16 ? (uint16_t)i : (uint16_t)(0x800 + i - 16);
}

static void method_label(int i, char *buf, size_t cap)
{
	const char *name;
	size_t j;

	if (i == METRICS_METHOD_OTHER) {
		snprintf(buf, cap, "other");
		return;
	}
	name = stun_method_name(method_of_index(i));
	if (!name || !*name || *name == '?' || !strncmp(name, "0x", 2)) {
		snprintf(buf, cap, "0x%03x", method_of_index(i));
		return;
	}
	snprintf(buf, cap, "%s", name);
	for (j = 0; buf[j]; j++)
		if (buf[j] == '"' || buf[j] == '\\')
			buf[j] = '_';
}

static void render_msgs(struct out *o, struct metrics *const *w, int n)
{
	char label[48];

	put(o, "# HELP stund_messages_total STUN messages received, by method and class.\n"
	       "# TYPE stund_messages_total counter\n");
	for (int i = 0; i < METRICS_METHODS; i++) {
		for (int c = 0; c < 4; c++) {
			uint64_t sum = 0;

			for (int k = 0; k < n; k++)
				sum += ld(&w[k]->msgs[i][c]);
			if (!sum && !(i == 1 && c == 0))
				continue;
			method_label(i, label, sizeof(label));
			put(o, "stund_messages_total{method=\"%s\",class=\"%s\"} %llu\n",
			    label, class_names[c], (unsigned long long)sum);
		}
	}
}

static void render_errors(struct out *o, struct metrics *const *w, int n)
{
	put(o, "# HELP stund_error_responses_total Error responses sent, by code.\n"
	       "# TYPE stund_error_responses_total counter\n");
	for (int i = 0; i < METRICS_ERRCODES; i++) {
		uint64_t sum = 0;

		for (int k = 0; k < n; k++)
			sum += ld(&w[k]->errors[i]);
		if (i < METRICS_ERRCODES - 1)
			put(o, "stund_error_responses_total{code=\"%u\"} %llu\n", err_codes[i],
			    (unsigned long long)sum);
		else
			put(o, "stund_error_responses_total{code=\"other\"} %llu\n",
			    (unsigned long long)sum);
	}
}

static void render_drops(struct out *o, struct metrics *const *w, int n)
{
	put(o, "# HELP stund_dropped_total Packets, messages and connections not served normally, by reason.\n"
	       "# TYPE stund_dropped_total counter\n");
	for (int i = 0; i < DROP__COUNT; i++) {
		uint64_t sum = 0;

		for (int k = 0; k < n; k++)
			sum += ld(&w[k]->drops[i]);
		put(o, "stund_dropped_total{reason=\"%s\"} %llu\n", drop_names[i],
		    (unsigned long long)sum);
	}
}

static uint64_t sum_field(struct metrics *const *w, int n, size_t off)
{
	uint64_t s = 0;

	for (int k = 0; k < n; k++)
		s += ld((const uint64_t *)((const char *)w[k] + off));
	return s;
}
#define SUM_FIELD(f) sum_field(w, n, offsetof(struct metrics, f))

static void render_traffic(struct out *o, struct metrics *const *w, int n)
{
	int64_t active = 0;

	for (int k = 0; k < n; k++)
		active += __atomic_load_n(&w[k]->conns_active, __ATOMIC_RELAXED);
	put(o, "# HELP stund_active_connections Open TCP/TLS connections.\n"
	       "# TYPE stund_active_connections gauge\nstund_active_connections %lld\n",
	    (long long)active);
	put(o, "# HELP stund_connections_total TCP/TLS connections accepted.\n"
	       "# TYPE stund_connections_total counter\nstund_connections_total %llu\n",
	    (unsigned long long)SUM_FIELD(conns_total));
	put(o, "# TYPE stund_received_packets_total counter\nstund_received_packets_total %llu\n",
	    (unsigned long long)SUM_FIELD(rx_packets));
	put(o, "# TYPE stund_received_bytes_total counter\nstund_received_bytes_total %llu\n",
	    (unsigned long long)SUM_FIELD(rx_bytes));
	put(o, "# TYPE stund_sent_packets_total counter\nstund_sent_packets_total %llu\n",
	    (unsigned long long)SUM_FIELD(tx_packets));
	put(o, "# TYPE stund_sent_bytes_total counter\nstund_sent_bytes_total %llu\n",
	    (unsigned long long)SUM_FIELD(tx_bytes));
}

size_t metrics_render(char *buf, size_t cap, struct metrics *const *w, int n,
		      const struct metrics_process *p)
{
	struct out o = { buf, cap, 0 };

	render_msgs(&o, w, n);
	render_errors(&o, w, n);
	render_drops(&o, w, n);
	render_traffic(&o, w, n);
	put(&o, "# TYPE stund_workers gauge\nstund_workers %d\n", p->workers);
	put(&o, "# HELP stund_config_reloads_total SIGHUP reloads, by result.\n"
		"# TYPE stund_config_reloads_total counter\n"
		"stund_config_reloads_total{result=\"ok\"} %llu\n"
		"stund_config_reloads_total{result=\"rejected\"} %llu\n",
	    (unsigned long long)p->reloads_ok, (unsigned long long)p->reloads_rejected);
	put(&o, "# TYPE stund_start_time_seconds gauge\nstund_start_time_seconds %.3f\n",
	    p->start_time);
	return o.len;
}

/* --- HTTP/1.0 endpoint --------------------------------------------------- */

#define HTTP_REQ_MAX 2048
#define HTTP_BODY_MAX (256 * 1024)
#define HTTP_TIMEOUT 5.0
#define HTTP_MAX_CLIENTS 16

struct http_client {
	struct metrics_http *h;
	int fd;
	ev_io io;
	ev_timer timer;
	char req[HTTP_REQ_MAX];
	size_t req_len;
	char *resp;
	size_t resp_len, resp_off;
	struct http_client *next;
};

struct metrics_http {
	struct ev_loop *loop;
	int fd;
	ev_io io;
	metrics_render_fn render;
	void *arg;
	struct http_client *clients;
	int n_clients;
};

static void client_free(struct http_client *c)
{
	struct metrics_http *h = c->h;

	for (struct http_client **p = &h->clients; *p; p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			break;
		}
	}
	h->n_clients--;
	ev_io_stop(h->loop, &c->io);
	ev_timer_stop(h->loop, &c->timer);
	close(c->fd);
	free(c->resp);
	free(c);
}

static void client_write(struct http_client *c)
{
	while (c->resp_off < c->resp_len) {
		ssize_t r = send(c->fd, c->resp + c->resp_off, c->resp_len - c->resp_off, MSG_NOSIGNAL);

		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r <= 0) {
			client_free(c);
			return;
		}
		c->resp_off += (size_t)r;
	}
	client_free(c);
}

static void client_respond(struct http_client *c)
{
	struct metrics_http *h = c->h;
	bool ok = !strncmp(c->req, "GET /metrics ", 13) || !strncmp(c->req, "GET / ", 6);
	char *body = malloc(HTTP_BODY_MAX);
	size_t blen = 0;
	int hl;

	c->resp = malloc(HTTP_BODY_MAX + 256);
	if (!body || !c->resp) {
		free(body);
		client_free(c);
		return;
	}
	if (ok)
		blen = h->render(h->arg, body, HTTP_BODY_MAX);
	else
		blen = (size_t)snprintf(body, HTTP_BODY_MAX, "not found: try GET /metrics\n");
	hl = snprintf(c->resp, 256,
		      "HTTP/1.0 %s\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
		      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		      ok ? "200 OK" : "404 Not Found", blen);
	memcpy(c->resp + hl, body, blen);
	free(body);
	c->resp_len = (size_t)hl + blen;
	ev_io_stop(h->loop, &c->io);
	ev_io_set(&c->io, c->fd, EV_WRITE);
	ev_io_start(h->loop, &c->io);
	client_write(c);
}

static void client_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct http_client *c = w->data;
	ssize_t r;

	(void)loop;
	if (revents & EV_WRITE) {
		client_write(c);
		return;
	}
	r = recv(c->fd, c->req + c->req_len, sizeof(c->req) - 1 - c->req_len, 0);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (r <= 0) {
		client_free(c);
		return;
	}
	c->req_len += (size_t)r;
	c->req[c->req_len] = 0;
	if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n") ||
	    c->req_len >= sizeof(c->req) - 1)
		client_respond(c);
}

static void client_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	client_free(t->data);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct metrics_http *h = w->data;
	struct http_client *c;
	int fd;

	(void)revents;
	fd = accept4(h->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (h->n_clients >= HTTP_MAX_CLIENTS || !(c = calloc(1, sizeof(*c)))) {
		close(fd);
		return;
	}
	c->h = h;
	c->fd = fd;
	c->next = h->clients;
	h->clients = c;
	h->n_clients++;
	ev_io_init(&c->io, client_cb, fd, EV_READ);
	c->io.data = c;
	ev_io_start(loop, &c->io);
	ev_timer_init(&c->timer, client_timeout, HTTP_TIMEOUT, 0);
	c->timer.data = c;
	ev_timer_start(loop, &c->timer);
}

int metrics_http_start(struct metrics_http **out, struct ev_loop *loop, const stun_sockaddr *addr,
		       metrics_render_fn render, void *arg, char *err, size_t errlen)
{
	struct metrics_http *h = calloc(1, sizeof(*h));
	char as[64];
	int one = 1, r;

	if (!h)
		return -ENOMEM;
	h->fd = socket(addr->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (h->fd < 0 || setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(h->fd, &addr->sa, stun_sockaddr_len(addr)) || listen(h->fd, 16)) {
		r = -errno;
		snprintf(err, errlen, "metrics-listen %s: %s",
			 stun_sockaddr_str(addr, as, sizeof(as)), strerror(errno));
		if (h->fd >= 0)
			close(h->fd);
		free(h);
		return r;
	}
	h->loop = loop;
	h->render = render;
	h->arg = arg;
	ev_io_init(&h->io, accept_cb, h->fd, EV_READ);
	h->io.data = h;
	ev_io_start(loop, &h->io);
	*out = h;
	return 0;
}

void metrics_http_stop(struct metrics_http *h)
{
	if (!h)
		return;
	while (h->clients)
		client_free(h->clients);
	ev_io_stop(h->loop, &h->io);
	close(h->fd);
	free(h);
}
