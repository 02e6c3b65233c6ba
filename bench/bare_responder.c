/* bare_responder: the ceiling of the Binding benchmark.
 *
 * One thread, one UDP socket: recvmmsg a batch, turn every Binding request
 * into the smallest valid Binding success response (header + XOR-MAPPED-
 * ADDRESS, plus FINGERPRINT when the request carries one), sendmmsg the batch
 * back. That is the least work any STUN server must do per request, so a
 * real server's rate divided by this one says what its own code costs.
 *
 *   bare_responder -l 127.0.0.1:PORT [-b batch] [-B sockbuf-bytes]
 *
 * Prints "bare_responder ready ADDR" once bound; SIGTERM/SIGINT stop it and
 * it prints its counters to stderr. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_stun.h"
#include "bench_util.h"

#define BATCH_MAX 256
#define IN_MAX 1500
#define OUT_MAX (BS_HDR + 4 + 20 + BS_FP_LEN)

struct bare {
	int fd;
	unsigned batch;
	uint64_t answered, dropped, send_failed;
	struct mmsghdr rx[BATCH_MAX], tx[BATCH_MAX];
	struct iovec rx_iov[BATCH_MAX], tx_iov[BATCH_MAX];
	union bs_addr from[BATCH_MAX];
	uint8_t in[BATCH_MAX][IN_MAX];
	uint8_t out[BATCH_MAX][OUT_MAX];
};

static int open_socket(const union bs_addr *addr, int sockbuf)
{
	int fd = socket(addr->sa.sa_family, SOCK_DGRAM, 0);

	if (fd < 0)
		return -errno;
	if (sockbuf > 0) {
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sockbuf, sizeof(sockbuf));
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sockbuf, sizeof(sockbuf));
	}
	if (bind(fd, &addr->sa, bs_addr_len(addr)) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static void setup_vectors(struct bare *b)
{
	for (unsigned i = 0; i < BATCH_MAX; i++) {
		b->rx_iov[i].iov_base = b->in[i];
		b->rx_iov[i].iov_len = IN_MAX;
		b->rx[i].msg_hdr.msg_iov = &b->rx_iov[i];
		b->rx[i].msg_hdr.msg_iovlen = 1;
		b->rx[i].msg_hdr.msg_name = &b->from[i];
		b->tx_iov[i].iov_base = b->out[i];
		b->tx[i].msg_hdr.msg_iov = &b->tx_iov[i];
		b->tx[i].msg_hdr.msg_iovlen = 1;
	}
}

/* Build the response to request i into out slot o; returns its length or 0
 * when the datagram is not a Binding request to answer. */
static size_t answer(struct bare *b, unsigned i, unsigned o)
{
	const uint8_t *req = b->in[i];
	size_t len = b->rx[i].msg_len, vlen, last;
	const uint8_t *val;
	uint8_t *rsp = b->out[o];

	/* RFC 8489 s6.3: drop what is not a well-formed STUN request. */
	if (!bs_header_ok(req, len) || bs_get16(req) != BS_BINDING_REQUEST)
		return 0;
	if (bs_attr_walk(req, len, BS_ATTR_FINGERPRINT, &val, &vlen, &last) < 0)
		return 0;
	bool fp = bs_is_fingerprint(req, len, last);
	/* RFC 8489 s14.7: a wrong FINGERPRINT means this is not STUN. */
	if (fp && !bs_fingerprint_ok(req, len))
		return 0;
	memcpy(rsp, req, BS_HDR); /* cookie and transaction ID */
	bs_put16(rsp, BS_BINDING_SUCCESS);
	size_t vl = bs_xor_addr_put(rsp + BS_HDR + 4, &b->from[i], rsp);
	bs_put16(rsp + BS_HDR, BS_ATTR_XOR_MAPPED);
	bs_put16(rsp + BS_HDR + 2, (uint16_t)vl);
	size_t out = BS_HDR + 4 + vl;
	bs_put16(rsp + 2, (uint16_t)(out - BS_HDR));
	if (fp)
		bs_add_fingerprint(rsp, &out);
	return out;
}

static void send_all(struct bare *b, unsigned n)
{
	unsigned done = 0;

	while (done < n) {
		int r = sendmmsg(b->fd, b->tx + done, n - done, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			b->send_failed++; /* skip the datagram the kernel refused */
			done++;
			continue;
		}
		b->answered += (unsigned)r;
		done += (unsigned)r;
	}
}

static int serve_batch(struct bare *b)
{
	for (unsigned i = 0; i < b->batch; i++)
		b->rx[i].msg_hdr.msg_namelen = sizeof(b->from[i]);
	int n = recvmmsg(b->fd, b->rx, b->batch, MSG_WAITFORONE, NULL);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	unsigned m = 0;
	for (unsigned i = 0; i < (unsigned)n; i++) {
		size_t len = answer(b, i, m);
		if (!len) {
			b->dropped++;
			continue;
		}
		b->tx[m].msg_hdr.msg_name = &b->from[i];
		b->tx[m].msg_hdr.msg_namelen = b->rx[i].msg_hdr.msg_namelen;
		b->tx_iov[m].iov_len = len;
		m++;
	}
	send_all(b, m);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: bare_responder -l ADDR:PORT [-b batch(1-%d)] [-B sockbuf-bytes]\n",
		BATCH_MAX);
}

static int parse_args(int argc, char **argv, union bs_addr *addr, unsigned *batch, int *sockbuf)
{
	int c, have_addr = 0;

	while ((c = getopt(argc, argv, "l:b:B:h")) != -1) {
		switch (c) {
		case 'l':
			if (bs_addr_parse(addr, optarg) < 0)
				return -1;
			have_addr = 1;
			break;
		case 'b':
			*batch = (unsigned)atoi(optarg);
			break;
		case 'B':
			*sockbuf = atoi(optarg);
			break;
		default:
			return -1;
		}
	}
	return have_addr && *batch >= 1 && *batch <= BATCH_MAX ? 0 : -1;
}

int main(int argc, char **argv)
{
	static struct bare b;
	union bs_addr addr;
	int sockbuf = 0, err = 0;
	char name[80];

	b.batch = 64;
	if (parse_args(argc, argv, &addr, &b.batch, &sockbuf) < 0) {
		usage();
		return 2;
	}
	bench_catch_stop();
	b.fd = open_socket(&addr, sockbuf);
	if (b.fd < 0) {
		fprintf(stderr, "bare_responder: %s: %s\n", bs_addr_str(&addr, name, sizeof(name)),
			strerror(-b.fd));
		return 1;
	}
	setup_vectors(&b);
	printf("bare_responder ready %s\n", bs_addr_str(&addr, name, sizeof(name)));
	fflush(stdout);
	while (!bench_stopped && !err)
		err = serve_batch(&b);
	if (err)
		fprintf(stderr, "bare_responder: recvmmsg: %s\n", strerror(-err));
	fprintf(stderr, "bare_responder: answered=%llu dropped=%llu send_failed=%llu\n",
		(unsigned long long)b.answered, (unsigned long long)b.dropped,
		(unsigned long long)b.send_failed);
	close(b.fd);
	return err ? 1 : 0;
}
