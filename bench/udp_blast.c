/* udp_blast: a UDP sender and echo with sequence numbers, to measure a
 * datagram forwarder (natclient's --local / --expose) from outside. It knows
 * nothing of STUN or NATs: it is the NAT-oblivious program at both ends.
 *
 *   echo   -l ADDR:PORT: echo every datagram to where it came
 *          from, in batches (recvmmsg / sendmmsg), until SIGTERM / SIGINT or
 *          -d seconds. Prints "udp_blast echo ready addr=IP:PORT" once bound,
 *          and one line of counts when it ends.
 *   send   -s ADDR:PORT: send datagrams of -l bytes, each carrying a run tag,
 *          a sequence number and its send time, from one connected socket;
 *          at most -w unanswered at a time (0: no window) and paced to -R
 *          datagrams/s (0: as fast as the window lets), for -d seconds or -n
 *          datagrams, then wait up to -t ms for the last echoes. When nothing
 *          comes back for -t ms the window is reopened (the missing ones are
 *          lost). Counted: sent, echoed (unique), duplicates, invalid, lost,
 *          round-trip time.
 *   probe  -s ADDR:PORT: send a small datagram every -i ms until the first
 *          echo comes back (at most -d seconds); print the time of that echo
 *          in ms since -T (CLOCK_REALTIME, seconds with a fraction, e.g.
 *          bash's $EPOCHREALTIME taken just before starting the forwarder)
 *          or since udp_blast started.
 *
 *   udp_blast echo  -l ADDR:PORT [-d seconds]
 *   udp_blast send  -s ADDR:PORT [-l payload] [-w window] [-R pps] [-n count]
 *                   [-d seconds] [-t loss-ms] [-L label]
 *   udp_blast probe -s ADDR:PORT [-T epoch-seconds] [-i interval-ms] [-d seconds]
 *
 * Results: one line "udp_blast mode=... k=v ..." on stdout. send: pps =
 * datagrams echoed per second (first send to last echo), mbps = their payload
 * Mbit/s one way (each echoed datagram crossed the forwarder twice). Exit 0
 * when something came back, 3 when nothing did, 2 on usage errors. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "bench_stun.h"
#include "bench_util.h"

#define BATCH 32
#define PKT_MAX 65507
#define HDR_LEN 24 /* magic, run tag, sequence, send time */
#define MAGIC 0x55424c31u /* "UBL1" */
#define SEQ_MAX (1ull << 31)

enum mode { MODE_ECHO, MODE_SEND, MODE_PROBE };

struct opts {
	enum mode mode;
	union bs_addr addr;
	size_t payload;
	unsigned window;
	double pps;
	uint64_t count;
	double seconds;
	unsigned loss_ms;
	double interval_ms;
	double since; /* CLOCK_REALTIME seconds, 0: our own start */
	const char *label;
};

struct blast {
	const struct opts *o;
	int fd;
	uint32_t tag;
	uint8_t *seen; /* bitmap of sequence numbers echoed */
	uint64_t seen_cap;
	uint64_t sent, echoed, dup, invalid, send_errors, written_off;
	uint64_t first_ns, last_echo_ns, rtt_sum_ns, rtt_max_ns;
	uint8_t buf[BATCH][2048];
};

static int open_socket(const union bs_addr *a, bool bind_it)
{
	int fd = socket(a->sa.sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int sz = 4 << 20;

	if (fd < 0)
		return -1;
	/* best effort: the kernel caps these at rmem_max / wmem_max */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	if ((bind_it ? bind(fd, &a->sa, bs_addr_len(a)) : connect(fd, &a->sa, bs_addr_len(a))) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void wait_readable(int fd, uint64_t ns)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull),
			       .tv_nsec = (long)(ns % 1000000000ull) };

	ppoll(&p, 1, &ts, NULL);
}

/* ---- echo ---- */

static int run_echo(const struct opts *o)
{
	static uint8_t buf[BATCH][PKT_MAX];
	struct mmsghdr m[BATCH];
	struct iovec iov[BATCH];
	union bs_addr from[BATCH], me;
	socklen_t ml = sizeof(me);
	uint64_t echoed = 0, bytes = 0;
	uint64_t end = o->seconds > 0 ? bench_now_ns() + (uint64_t)(o->seconds * 1e9) : 0;
	char b[64];
	int fd = open_socket(&o->addr, true);

	if (fd < 0 || getsockname(fd, &me.sa, &ml) < 0) {
		fprintf(stderr, "udp_blast: bind %s: %s\n", bs_addr_str(&o->addr, b, sizeof(b)),
			strerror(errno));
		return 1;
	}
	printf("udp_blast echo ready addr=%s\n", bs_addr_str(&me, b, sizeof(b)));
	fflush(stdout);
	while (!bench_stopped && (!end || bench_now_ns() < end)) {
		for (int i = 0; i < BATCH; i++) {
			iov[i] = (struct iovec){ buf[i], PKT_MAX };
			m[i].msg_hdr = (struct msghdr){ .msg_name = &from[i], .msg_namelen = sizeof(from[i]),
							.msg_iov = &iov[i], .msg_iovlen = 1 };
		}
		int n = recvmmsg(fd, m, BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0) {
			wait_readable(fd, 100000000ull);
			continue;
		}
		for (int i = 0; i < n; i++) {
			iov[i].iov_len = m[i].msg_len;
			bytes += m[i].msg_len;
		}
		int s = sendmmsg(fd, m, (unsigned)n, 0);
		echoed += s > 0 ? (uint64_t)s : 0;
	}
	printf("udp_blast mode=echo echoed=%llu bytes=%llu\n", (unsigned long long)echoed,
	       (unsigned long long)bytes);
	close(fd);
	return echoed ? 0 : 3;
}

/* ---- send ---- */

static bool seen_test_set(struct blast *bl, uint64_t seq)
{
	if (seq >= bl->seen_cap) {
		uint64_t cap = bl->seen_cap ? bl->seen_cap : 1 << 16;
		while (cap <= seq)
			cap *= 2;
		uint8_t *p = realloc(bl->seen, cap / 8);
		if (!p)
			return true; /* cannot count it: call it a duplicate */
		memset(p + bl->seen_cap / 8, 0, (cap - bl->seen_cap) / 8);
		bl->seen = p;
		bl->seen_cap = cap;
	}
	bool was = bl->seen[seq / 8] & (1u << (seq % 8));
	bl->seen[seq / 8] |= (uint8_t)(1u << (seq % 8));
	return was;
}

static void fill(struct blast *bl, uint8_t *p, uint64_t seq, uint64_t now)
{
	bs_put32(p, MAGIC);
	bs_put32(p + 4, bl->tag);
	bs_put64(p + 8, seq);
	bs_put64(p + 16, now);
	for (size_t i = HDR_LEN; i < bl->o->payload; i++)
		p[i] = (uint8_t)(seq + i);
}

static void check_echo(struct blast *bl, const uint8_t *p, size_t len, uint64_t now)
{
	if (len != bl->o->payload || bs_get32(p) != MAGIC || bs_get32(p + 4) != bl->tag) {
		bl->invalid++;
		return;
	}
	uint64_t seq = bs_get64(p + 8), t = bs_get64(p + 16);
	if (seq >= bl->sent || t > now || (len > HDR_LEN && p[len - 1] != (uint8_t)(seq + len - 1))) {
		bl->invalid++;
		return;
	}
	if (seen_test_set(bl, seq)) {
		bl->dup++;
		return;
	}
	bl->echoed++;
	bl->last_echo_ns = now;
	bl->rtt_sum_ns += now - t;
	if (now - t > bl->rtt_max_ns)
		bl->rtt_max_ns = now - t;
}

static unsigned recv_batch(struct blast *bl)
{
	struct mmsghdr m[BATCH];
	struct iovec iov[BATCH];
	uint64_t now;
	int n;

	for (int i = 0; i < BATCH; i++) {
		iov[i] = (struct iovec){ bl->buf[i], sizeof(bl->buf[i]) };
		m[i].msg_hdr = (struct msghdr){ .msg_iov = &iov[i], .msg_iovlen = 1 };
	}
	n = recvmmsg(bl->fd, m, BATCH, MSG_DONTWAIT, NULL);
	if (n <= 0)
		return 0;
	now = bench_now_ns();
	for (int i = 0; i < n; i++)
		check_echo(bl, bl->buf[i], m[i].msg_len, now);
	return (unsigned)n;
}

/* How many may go now: the window, the pace, the count, one batch. */
static unsigned may_send(const struct blast *bl, uint64_t now)
{
	const struct opts *o = bl->o;
	uint64_t n = BATCH;

	if (o->window) {
		uint64_t out = bl->sent - bl->echoed - bl->written_off;
		n = out >= o->window ? 0 : o->window - out < n ? o->window - out : n;
	}
	if (o->pps > 0) {
		uint64_t due = (uint64_t)((double)(now - bl->first_ns) / 1e9 * o->pps) + 1;
		uint64_t left = due > bl->sent ? due - bl->sent : 0;
		n = left < n ? left : n;
	}
	if (o->count && bl->sent + n > o->count)
		n = o->count - bl->sent;
	return (unsigned)n;
}

static unsigned send_batch(struct blast *bl, unsigned n, uint64_t now)
{
	static uint8_t out[BATCH][2048];
	struct mmsghdr m[BATCH];
	struct iovec iov[BATCH];
	int s;

	for (unsigned i = 0; i < n; i++) {
		fill(bl, out[i], bl->sent + i, now);
		iov[i] = (struct iovec){ out[i], bl->o->payload };
		m[i].msg_hdr = (struct msghdr){ .msg_iov = &iov[i], .msg_iovlen = 1 };
	}
	s = sendmmsg(bl->fd, m, n, 0);
	if (s <= 0) {
		/* ECONNREFUSED: nobody listens (yet); ENOBUFS / EAGAIN: full */
		bl->send_errors++;
		return 0;
	}
	bl->sent += (uint64_t)s;
	return (unsigned)s;
}

static void run_send_loop(struct blast *bl)
{
	const struct opts *o = bl->o;
	uint64_t end = bl->first_ns + (uint64_t)(o->seconds * 1e9), quiet = bl->first_ns;
	uint64_t loss_ns = (uint64_t)o->loss_ms * 1000000ull;

	for (;;) {
		uint64_t now = bench_now_ns();
		bool sending = !bench_stopped && now < end && (!o->count || bl->sent < o->count) &&
			       bl->sent < SEQ_MAX;
		unsigned got = recv_batch(bl), put = 0;

		if (got)
			quiet = now;
		if (!sending && (bl->echoed + bl->written_off >= bl->sent || now - quiet >= loss_ns))
			return;
		if (sending && now - quiet >= loss_ns) { /* nothing for a while: reopen */
			bl->written_off = bl->sent - bl->echoed;
			quiet = now;
		}
		if (sending) {
			unsigned n = may_send(bl, now);
			put = n ? send_batch(bl, n, now) : 0;
		}
		if (!got && !put)
			wait_readable(bl->fd, 1000000ull);
	}
}

static void report_send(const struct blast *bl)
{
	const struct opts *o = bl->o;
	uint64_t span = bl->last_echo_ns > bl->first_ns ? bl->last_echo_ns - bl->first_ns : 0;
	double secs = (double)span / 1e9;
	double pps = secs > 0 ? (double)bl->echoed / secs : 0;
	uint64_t lost = bl->sent - bl->echoed;

	printf("udp_blast mode=send label=%s payload=%zu window=%u sent=%llu echoed=%llu "
	       "lost=%llu loss_pct=%.3f dup=%llu invalid=%llu send_errors=%llu seconds=%.3f "
	       "pps=%.0f mbps=%.2f rtt_avg_us=%.0f rtt_max_us=%.0f\n",
	       o->label, o->payload, o->window, (unsigned long long)bl->sent,
	       (unsigned long long)bl->echoed, (unsigned long long)lost,
	       bl->sent ? 100.0 * (double)lost / (double)bl->sent : 0.0,
	       (unsigned long long)bl->dup, (unsigned long long)bl->invalid,
	       (unsigned long long)bl->send_errors, secs, pps, pps * (double)o->payload * 8 / 1e6,
	       bl->echoed ? (double)bl->rtt_sum_ns / (double)bl->echoed / 1e3 : 0.0,
	       (double)bl->rtt_max_ns / 1e3);
}

static int run_send(const struct opts *o)
{
	static struct blast bl;
	char b[64];

	bl.o = o;
	bl.fd = open_socket(&o->addr, false);
	if (bl.fd < 0) {
		fprintf(stderr, "udp_blast: %s: %s\n", bs_addr_str(&o->addr, b, sizeof(b)),
			strerror(errno));
		return 1;
	}
	bl.tag = (uint32_t)(bench_clock_ns(CLOCK_REALTIME) ^ (uint64_t)getpid() << 16);
	bl.first_ns = bench_now_ns();
	run_send_loop(&bl);
	report_send(&bl);
	close(bl.fd);
	free(bl.seen);
	return bl.echoed ? 0 : 3;
}

/* ---- probe ---- */

static int run_probe(const struct opts *o)
{
	static struct blast bl;
	uint64_t start = bench_now_ns(), end = start + (uint64_t)(o->seconds * 1e9);
	uint64_t step = (uint64_t)(o->interval_ms * 1e6), next = start;
	double since = o->since > 0 ? o->since : (double)bench_clock_ns(CLOCK_REALTIME) / 1e9;
	char b[64];

	bl.o = o;
	bl.tag = (uint32_t)(bench_clock_ns(CLOCK_REALTIME) ^ (uint64_t)getpid() << 16);
	/* unconnected: an ICMP port unreachable before the forwarder binds
	 * its port is no error for this socket */
	union bs_addr any = { 0 };
	any.sa.sa_family = o->addr.sa.sa_family;
	bl.fd = open_socket(&any, true);
	if (bl.fd < 0) {
		fprintf(stderr, "udp_blast: socket: %s\n", strerror(errno));
		return 1;
	}
	while (!bench_stopped && !bl.echoed && bench_now_ns() < end) {
		uint64_t now = bench_now_ns();
		if (now >= next) {
			uint8_t *p = bl.buf[BATCH - 1];
			fill(&bl, p, bl.sent, now);
			if (sendto(bl.fd, p, o->payload, 0, &o->addr.sa, bs_addr_len(&o->addr)) > 0)
				bl.sent++;
			next = now + step;
		}
		wait_readable(bl.fd, next > now ? next - now : step);
		recv_batch(&bl);
	}
	double at = (double)bench_clock_ns(CLOCK_REALTIME) / 1e9;
	printf("udp_blast mode=probe to=%s probes=%llu echoed=%llu first_echo_ms=%.1f\n",
	       bs_addr_str(&o->addr, b, sizeof(b)), (unsigned long long)bl.sent,
	       (unsigned long long)bl.echoed, bl.echoed ? (at - since) * 1e3 : -1.0);
	close(bl.fd);
	return bl.echoed ? 0 : 3;
}

/* ---- command line ---- */

static void usage(void)
{
	fputs("usage: udp_blast echo  -l ADDR:PORT [-d seconds]\n"
	      "       udp_blast send  -s ADDR:PORT [-l payload] [-w window] [-R pps] [-n count]\n"
	      "                       [-d seconds] [-t loss-ms] [-L label]\n"
	      "       udp_blast probe -s ADDR:PORT [-T epoch-seconds] [-i interval-ms] [-d seconds]\n"
	      "defaults: -l 100 -w 64 -R 0 (max) -d 5 (probe: 10, echo: until SIGTERM) -t 200 -i 2\n",
	      stderr);
}

static int parse_mode(const char *s, struct opts *o)
{
	if (!strcmp(s, "echo"))
		o->mode = MODE_ECHO;
	else if (!strcmp(s, "send"))
		o->mode = MODE_SEND;
	else if (!strcmp(s, "probe"))
		o->mode = MODE_PROBE;
	else
		return -1;
	o->seconds = o->mode == MODE_PROBE ? 10 : o->mode == MODE_ECHO ? 0 : 5;
	o->payload = o->mode == MODE_PROBE ? HDR_LEN : 100;
	return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	bool have_addr = false;
	int c;

	*o = (struct opts){ .window = 64, .loss_ms = 200, .interval_ms = 2, .label = "-" };
	if (argc < 2 || parse_mode(argv[1], o) < 0)
		return -1;
	optind = 2;
	while ((c = getopt(argc, argv, "l:s:w:R:n:d:t:L:T:i:h")) != -1) {
		switch (c) {
		case 'l':
			if (o->mode == MODE_ECHO) {
				have_addr = bs_addr_parse(&o->addr, optarg) == 0;
				if (!have_addr)
					return -1;
			} else {
				o->payload = strtoul(optarg, NULL, 10);
			}
			break;
		case 's':
			have_addr = bs_addr_parse(&o->addr, optarg) == 0;
			if (!have_addr)
				return -1;
			break;
		case 'w': o->window = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'R': o->pps = strtod(optarg, NULL); break;
		case 'n': o->count = strtoull(optarg, NULL, 10); break;
		case 'd': o->seconds = strtod(optarg, NULL); break;
		case 't': o->loss_ms = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'L': o->label = optarg; break;
		case 'T': o->since = strtod(optarg, NULL); break;
		case 'i': o->interval_ms = strtod(optarg, NULL); break;
		default: return -1;
		}
	}
	if (!have_addr || optind != argc || o->seconds < 0 || o->interval_ms <= 0)
		return -1;
	if (o->payload < HDR_LEN || o->payload > 2048)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;

	if (parse_args(argc, argv, &o) < 0) {
		usage();
		return 2;
	}
	bench_catch_stop();
	signal(SIGPIPE, SIG_IGN);
	if (o.mode == MODE_ECHO)
		return run_echo(&o);
	if (o.mode == MODE_SEND)
		return run_send(&o);
	return run_probe(&o);
}
