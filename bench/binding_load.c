/* binding_load: a STUN Binding load generator over UDP.
 *
 * Several flows (one connected UDP socket each, so SO_REUSEPORT workers of
 * the server get spread), each keeping up to a window of requests
 * outstanding, sent and received in sendmmsg/recvmmsg batches from one
 * thread. Every answer is checked: a Binding success whose transaction ID
 * names an outstanding request of that flow and whose XOR-MAPPED-ADDRESS is
 * the flow's own address (and whose FINGERPRINT, if any, is right). Requests
 * unanswered after the loss timeout count as lost.
 *
 *   binding_load -s ADDR:PORT [-d seconds] [-n max-requests] [-f flows]
 *                [-w window-per-flow] [-b batch] [-t loss-timeout-ms]
 *                [-F] [-j] [-L label]
 *   binding_load -s ADDR:PORT -p seconds     readiness probe: exit 0 once
 *                                            one Binding is answered
 *
 * The rate printed (rps) is the answers received while sending, divided by
 * the sending time; answers that come in while draining at the end count in
 * answered but not in rps. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <sys/resource.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "bench_stun.h"
#include "bench_util.h"

#define BATCH_MAX 256
#define FLOWS_MAX 64
#define RX_MAX 1500
#define TX_MAX (BS_HDR + BS_FP_LEN)
#define EXPIRE_EVERY_NS 10000000ull

struct opts {
	union bs_addr server;
	const char *label;
	unsigned flows, window, batch;
	double seconds;
	uint64_t max_requests;
	unsigned timeout_ms;
	double probe;
	bool fingerprint, json;
};

struct slot {
	uint64_t seq; /* 0: free */
	uint64_t sent_ns;
};

struct flow {
	int fd;
	union bs_addr local;
	struct slot *slots;
	uint32_t *free_list;
	unsigned nfree;
	uint64_t next_seq;
};

struct counters {
	uint64_t sent, answered, lost, late, invalid, send_errors;
	uint64_t rtt_ns_sum;
};

struct load {
	struct opts o;
	struct flow flows[FLOWS_MAX];
	struct pollfd pfds[FLOWS_MAX];
	struct counters c;
	uint64_t answered_in_run;
	uint64_t cpu_in_run; /* our own CPU time while sending */
	struct mmsghdr tx[BATCH_MAX], rx[BATCH_MAX];
	struct iovec tx_iov[BATCH_MAX], rx_iov[BATCH_MAX];
	uint32_t tx_slot[BATCH_MAX];
	uint8_t tx_buf[BATCH_MAX][TX_MAX];
	uint8_t rx_buf[BATCH_MAX][RX_MAX];
};

/* ---- flows ---- */

static int flow_open(struct flow *f, const struct opts *o)
{
	int buf = 4 << 20;
	socklen_t len = sizeof(f->local);

	f->fd = socket(o->server.sa.sa_family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	if (f->fd < 0)
		return -errno;
	bench_big_rcvbuf(f->fd, buf);
	if (connect(f->fd, &o->server.sa, bs_addr_len(&o->server)) < 0)
		return -errno;
	if (getsockname(f->fd, &f->local.sa, &len) < 0)
		return -errno;
	f->slots = calloc(o->window, sizeof(*f->slots));
	f->free_list = calloc(o->window, sizeof(*f->free_list));
	if (!f->slots || !f->free_list)
		return -ENOMEM;
	for (unsigned i = 0; i < o->window; i++)
		f->free_list[i] = o->window - 1 - i;
	f->nfree = o->window;
	f->next_seq = 1;
	return 0;
}

static void flow_close(struct flow *f)
{
	if (f->fd > 0)
		close(f->fd);
	free(f->slots);
	free(f->free_list);
}

static void slot_release(struct flow *f, uint32_t idx)
{
	f->slots[idx].seq = 0;
	f->free_list[f->nfree++] = idx;
}

/* ---- sending ---- */

/* A Binding request (RFC 8489 s6.1) whose transaction ID is the slot index
 * (4 bytes) and the flow's sequence number (8 bytes). */
static size_t build_request(uint8_t *m, uint32_t idx, uint64_t seq, bool fingerprint)
{
	size_t len = BS_HDR;

	bs_put16(m, BS_BINDING_REQUEST);
	bs_put16(m + 2, 0);
	bs_put32(m + 4, BS_COOKIE);
	bs_put32(m + 8, idx);
	bs_put64(m + 12, seq);
	if (fingerprint)
		bs_add_fingerprint(m, &len);
	return len;
}

static unsigned tx_count(const struct load *l, const struct flow *f)
{
	uint64_t n = f->nfree < l->o.batch ? f->nfree : l->o.batch;

	if (l->o.max_requests && l->o.max_requests - l->c.sent < n)
		n = l->o.max_requests - l->c.sent;
	return (unsigned)n;
}

/* Fill the flow's window by up to one batch. Returns how many went out. */
static unsigned flow_send(struct load *l, struct flow *f, uint64_t now)
{
	unsigned n = tx_count(l, f);

	for (unsigned i = 0; i < n; i++) {
		uint32_t idx = f->free_list[--f->nfree];
		uint64_t seq = f->next_seq++;

		f->slots[idx].seq = seq;
		f->slots[idx].sent_ns = now;
		l->tx_slot[i] = idx;
		l->tx_iov[i].iov_len = build_request(l->tx_buf[i], idx, seq, l->o.fingerprint);
	}
	int r = n ? sendmmsg(f->fd, l->tx, n, 0) : 0;
	if (r < 0) {
		if (errno != EAGAIN && errno != EINTR)
			l->c.send_errors++;
		r = 0;
	}
	for (unsigned i = (unsigned)r; i < n; i++) /* not sent: free again */
		slot_release(f, l->tx_slot[i]);
	l->c.sent += (unsigned)r;
	return (unsigned)r;
}

/* ---- receiving ---- */

/* Is this a right answer to the flow's outstanding request? Counts it. */
static void check_answer(struct load *l, struct flow *f, const uint8_t *m, size_t len,
			 uint64_t now)
{
	const uint8_t *val;
	size_t vlen, last;

	if (!bs_header_ok(m, len) || bs_get16(m) != BS_BINDING_SUCCESS) {
		l->c.invalid++;
		return;
	}
	uint32_t idx = bs_get32(m + 8);
	uint64_t seq = bs_get64(m + 12);
	if (idx >= l->o.window || !seq || seq >= f->next_seq) {
		l->c.invalid++; /* a transaction ID we never sent */
		return;
	}
	if (f->slots[idx].seq != seq) {
		l->c.late++; /* answered after its loss timeout, or twice */
		return;
	}
	uint64_t sent = f->slots[idx].sent_ns;
	slot_release(f, idx);
	if (bs_attr_walk(m, len, BS_ATTR_XOR_MAPPED, &val, &vlen, &last) < 0 || !val ||
	    !bs_xor_addr_is(val, vlen, &f->local, m)) {
		l->c.invalid++;
		return;
	}
	bool fp = bs_is_fingerprint(m, len, last);
	if ((fp && !bs_fingerprint_ok(m, len)) || (l->o.fingerprint && !fp)) {
		l->c.invalid++;
		return;
	}
	l->c.answered++;
	l->c.rtt_ns_sum += now - sent;
}

/* Read what the flow has, a few batches at most. Returns datagrams read. */
static unsigned flow_recv(struct load *l, struct flow *f, uint64_t now)
{
	unsigned total = 0;

	for (int round = 0; round < 4; round++) {
		int n = recvmmsg(f->fd, l->rx, l->o.batch, MSG_DONTWAIT, NULL);
		if (n <= 0)
			break; /* EAGAIN, or an ICMP error (ECONNREFUSED) on the flow */
		for (int i = 0; i < n; i++)
			check_answer(l, f, l->rx_buf[i], l->rx[i].msg_len, now);
		total += (unsigned)n;
		if ((unsigned)n < l->o.batch)
			break;
	}
	return total;
}

static void expire(struct load *l, uint64_t now, uint64_t timeout_ns)
{
	for (unsigned i = 0; i < l->o.flows; i++) {
		struct flow *f = &l->flows[i];

		for (uint32_t s = 0; s < l->o.window; s++) {
			if (f->slots[s].seq && now - f->slots[s].sent_ns >= timeout_ns) {
				slot_release(f, s);
				l->c.lost++;
			}
		}
	}
}

static uint64_t outstanding(const struct load *l)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < l->o.flows; i++)
		n += l->o.window - l->flows[i].nfree;
	return n;
}

/* ---- the run ---- */

static void setup_vectors(struct load *l)
{
	bench_mmsg_setup(l->tx, l->tx_iov, l->tx_buf[0], TX_MAX, 0, BATCH_MAX);
	bench_mmsg_setup(l->rx, l->rx_iov, l->rx_buf[0], RX_MAX, RX_MAX, BATCH_MAX);
}

static unsigned step(struct load *l, bool sending, uint64_t now)
{
	unsigned busy = 0;

	for (unsigned i = 0; i < l->o.flows; i++) {
		busy += flow_recv(l, &l->flows[i], now);
		if (sending)
			busy += flow_send(l, &l->flows[i], now);
	}
	return busy;
}

/* Send for the duration (or up to the maximum count), then wait for the
 * last answers up to the loss timeout. Returns the sending time in ns. */
static uint64_t run(struct load *l)
{
	uint64_t timeout_ns = (uint64_t)l->o.timeout_ms * 1000000ull;
	uint64_t start = bench_now_ns(), now = start, last_expire = start, cpu0 = bench_cpu_ns();
	uint64_t run_end = start + (uint64_t)(l->o.seconds * 1e9), send_end = 0;
	bool sending = true;

	for (;;) {
		if (sending && (now >= run_end || bench_stopped ||
				(l->o.max_requests && l->c.sent >= l->o.max_requests))) {
			sending = false;
			send_end = now;
			l->answered_in_run = l->c.answered;
			l->cpu_in_run = bench_cpu_ns() - cpu0;
		}
		if (!sending && (!outstanding(l) || now - send_end >= timeout_ns))
			break;
		if (!step(l, sending, now))
			poll(l->pfds, l->o.flows, 1);
		now = bench_now_ns();
		if (now - last_expire >= EXPIRE_EVERY_NS) {
			expire(l, now, timeout_ns);
			last_expire = now;
		}
	}
	l->c.lost += outstanding(l); /* unanswered at the end */
	return send_end - start;
}

static void report(const struct load *l, uint64_t send_ns)
{
	const struct counters *c = &l->c;
	double secs = (double)send_ns / 1e9;
	double rps = secs > 0 ? (double)l->answered_in_run / secs : 0;
	double rtt_us = c->answered ? (double)c->rtt_ns_sum / (double)c->answered / 1e3 : 0;
	double cpu = send_ns ? 100.0 * (double)l->cpu_in_run / (double)send_ns : 0;
	char srv[80];
	const char *fmt = l->o.json ?
		"{\"label\":\"%s\",\"server\":\"%s\",\"flows\":%u,\"window\":%u,\"batch\":%u,"
		"\"seconds\":%.3f,\"sent\":%llu,\"answered\":%llu,\"lost\":%llu,\"late\":%llu,"
		"\"invalid\":%llu,\"send_errors\":%llu,\"rps\":%.0f,\"rtt_us\":%.1f,"
		"\"cpu_pct\":%.0f}\n" :
		"binding_load label=%s server=%s flows=%u window=%u batch=%u seconds=%.3f "
		"sent=%llu answered=%llu lost=%llu late=%llu invalid=%llu send_errors=%llu "
		"rps=%.0f rtt_us=%.1f cpu_pct=%.0f\n";

	printf(fmt, l->o.label, bs_addr_str(&l->o.server, srv, sizeof(srv)), l->o.flows,
	       l->o.window, l->o.batch, secs, (unsigned long long)c->sent,
	       (unsigned long long)c->answered, (unsigned long long)c->lost,
	       (unsigned long long)c->late, (unsigned long long)c->invalid,
	       (unsigned long long)c->send_errors, rps, rtt_us, cpu);
	fflush(stdout);
}

/* ---- readiness probe ---- */

/* One Binding every 100 ms until a valid answer or the deadline. */
static int probe(struct load *l)
{
	struct flow *f = &l->flows[0];
	uint64_t deadline = bench_now_ns() + (uint64_t)(l->o.probe * 1e9);

	l->o.batch = 1;
	while (!bench_stopped && bench_now_ns() < deadline) {
		if (f->nfree == 0)
			slot_release(f, 0); /* previous attempt unanswered: retry */
		flow_send(l, f, bench_now_ns());
		poll(l->pfds, 1, 100);
		flow_recv(l, f, bench_now_ns());
		if (l->c.answered)
			return 0;
	}
	return 1;
}

/* ---- main ---- */

static void usage(void)
{
	fprintf(stderr,
		"usage: binding_load -s ADDR:PORT [-d seconds(10)] [-n max-requests(0=none)]\n"
		"         [-f flows(4)] [-w window-per-flow(32)] [-b batch(32)]\n"
		"         [-t loss-timeout-ms(1000)] [-F fingerprint] [-j json] [-L label]\n"
		"       binding_load -s ADDR:PORT -p seconds   (readiness probe)\n");
}

static bool opts_valid(const struct opts *o)
{
	return o->server.sa.sa_family && o->flows >= 1 && o->flows <= FLOWS_MAX &&
	       o->window >= 1 && o->window <= 65536 && o->batch >= 1 &&
	       o->batch <= BATCH_MAX && o->seconds > 0 && o->seconds <= 3600 &&
	       o->timeout_ms >= 1 && o->probe >= 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	int c;

	*o = (struct opts){ .label = "-", .flows = 4, .window = 32, .batch = 32,
			    .seconds = 10, .timeout_ms = 1000 };
	while ((c = getopt(argc, argv, "s:d:n:f:w:b:t:p:FjL:h")) != -1) {
		switch (c) {
		case 's': if (bs_addr_parse(&o->server, optarg) < 0) return -1; break;
		case 'd': o->seconds = atof(optarg); break;
		case 'n': o->max_requests = strtoull(optarg, NULL, 10); break;
		case 'f': o->flows = (unsigned)atoi(optarg); break;
		case 'w': o->window = (unsigned)atoi(optarg); break;
		case 'b': o->batch = (unsigned)atoi(optarg); break;
		case 't': o->timeout_ms = (unsigned)atoi(optarg); break;
		case 'p': o->probe = atof(optarg); break;
		case 'F': o->fingerprint = true; break;
		case 'j': o->json = true; break;
		case 'L': o->label = optarg; break;
		default: return -1;
		}
	}
	return opts_valid(o) ? 0 : -1;
}

static int open_flows(struct load *l)
{
	unsigned n = l->o.probe > 0 ? 1 : l->o.flows;

	l->o.flows = n;
	if (l->o.probe > 0)
		l->o.window = 1; /* one attempt at a time, retried */
	for (unsigned i = 0; i < n; i++) {
		int err = flow_open(&l->flows[i], &l->o);
		if (err < 0)
			return err;
		l->pfds[i] = (struct pollfd){ .fd = l->flows[i].fd, .events = POLLIN };
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct load l;
	int rc = 0;

	if (parse_args(argc, argv, &l.o) < 0) {
		usage();
		return 2;
	}
	bench_catch_stop();
	setup_vectors(&l);
	int err = open_flows(&l);
	if (err < 0) {
		fprintf(stderr, "binding_load: opening flows: %s\n", strerror(-err));
		rc = 1;
	} else if (l.o.probe > 0) {
		rc = probe(&l);
	} else {
		report(&l, run(&l));
		rc = l.c.answered ? 0 : 3;
	}
	for (unsigned i = 0; i < l.o.flows; i++)
		flow_close(&l.flows[i]);
	return rc;
}
