/* micro_proto: messages per second on one core for proto/'s hot paths:
 * parse, verify and build of Binding requests/responses (with and without
 * MESSAGE-INTEGRITY + FINGERPRINT) and of a ChannelData frame.
 *   micro_proto [iterations]   (default 2000000 per cell, at most 1 s each)
 * Speed is measured here, never asserted in a test. */
#include "stun_msg.h"
#include "turn_frame.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SECONDS 1.0

static const uint8_t key[] = "VOkJxbRl1RmTxUk/WvJxBt";
#define KEYLEN (sizeof(key) - 1)
static const uint8_t tid[12] = { 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
				 0xfa, 0x87, 0xdf, 0xae };

struct work {
	bool response; /* Binding success response instead of request */
	bool integrity; /* MESSAGE-INTEGRITY + FINGERPRINT */
	uint8_t msg[256];
	int len;
	uint8_t out[256];
	stun_sockaddr peer;
	volatile unsigned sink;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int build(struct work *w, uint8_t *buf)
{
	struct stun_builder b;

	stun_build_init(&b, buf, 256, STUN_METHOD_BINDING,
			w->response ? STUN_CLASS_SUCCESS : STUN_CLASS_REQUEST, tid);
	if (w->response)
		stun_build_xor_addr(&b, STUN_ATTR_XOR_MAPPED_ADDRESS, &w->peer);
	else
		stun_build_str(&b, STUN_ATTR_USERNAME, "evtj:h6vY");
	stun_build_str(&b, STUN_ATTR_SOFTWARE, "natkit");
	if (w->integrity) {
		stun_build_mi(&b, key, KEYLEN);
		stun_build_fingerprint(&b);
	}
	return stun_build_finish(&b);
}

static void op_build(struct work *w)
{
	w->sink += (unsigned)build(w, w->out);
}

static void op_parse(struct work *w)
{
	struct stun_msg m;

	w->sink += (unsigned)stun_msg_parse(&m, w->msg, (size_t)w->len) + m.present;
}

static void op_parse_verify(struct work *w)
{
	struct stun_msg m;
	int rc = stun_msg_parse(&m, w->msg, (size_t)w->len);

	if (!rc && w->integrity)
		rc = stun_msg_verify_mi(&m, key, KEYLEN);
	w->sink += (unsigned)rc;
}

/* What a server does per request: parse, verify, build the answer. */
static void op_cycle(struct work *w)
{
	op_parse_verify(w);
	op_build(w);
}

static void op_chandata(struct work *w)
{
	const uint8_t *d;
	uint16_t ch, dl;
	size_t fl;

	turn_chandata_header(w->out, 0x4001, 100);
	w->sink += (unsigned)turn_stream_frame_len(w->out, 104, &fl) + (unsigned)fl;
	w->sink += (unsigned)turn_chandata_parse(w->out, 104, &ch, &d, &dl) + dl;
}

static double rate(struct work *w, void (*op)(struct work *), long iters)
{
	double t0 = now(), t;
	long i, done = 0;

	for (;;) {
		for (i = 0; i < 1000; i++)
			op(w);
		done += 1000;
		t = now() - t0;
		if (done >= iters || t >= MAX_SECONDS)
			return done / t;
	}
}

static void row(const char *name, bool response, bool integrity, long iters)
{
	struct work w;

	memset(&w, 0, sizeof(w));
	w.response = response;
	w.integrity = integrity;
	stun_sockaddr_parse(&w.peer, "192.0.2.1:32853", 0);
	w.len = build(&w, w.msg);
	if (w.len < 0) {
		fprintf(stderr, "build failed: %s\n", stun_strerror(w.len));
		exit(1);
	}
	printf("%-36s %5d %12.0f %12.0f ", name, w.len, rate(&w, op_build, iters),
	       rate(&w, op_parse, iters));
	if (integrity)
		printf("%12.0f", rate(&w, op_parse_verify, iters));
	else
		printf("%12s", "-");
	printf(" %13.0f\n", rate(&w, op_cycle, iters));
}

static void pin_to_one_core(void)
{
	cpu_set_t set;
	int cpu = sched_getcpu();

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

int main(int argc, char **argv)
{
	long iters = argc > 1 ? atol(argv[1]) : 2000000;
	struct work w;

	if (iters <= 0) {
		fprintf(stderr, "usage: micro_proto [iterations > 0]\n");
		return 2;
	}
	pin_to_one_core();
	printf("messages/s on one core (max %ld iterations or %.0f s per cell; parse includes\n"
	       "the FINGERPRINT check; verify = MESSAGE-INTEGRITY HMAC-SHA1)\n", iters, MAX_SECONDS);
	printf("%-36s %5s %12s %12s %12s %13s\n", "message", "bytes", "build", "parse",
	       "parse+verify", "parse+ver+bld");
	row("Binding request", false, false, iters);
	row("Binding request +MI+FINGERPRINT", false, true, iters);
	row("Binding response", true, false, iters);
	row("Binding response +MI+FINGERPRINT", true, true, iters);
	memset(&w, 0, sizeof(w));
	printf("%-36s %5d %12s %12.0f %12s %13s\n", "ChannelData 100 B (hdr+framelen+parse)",
	       104, "-", rate(&w, op_chandata, iters * 10), "-", "-");
	return 0;
}
