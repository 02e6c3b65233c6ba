/* Unit tests for the pieces of the server's packet path that need no
 * network: stream framing (stream_rx), the RFC 5780 listening address set,
 * per-source rate limiting. */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "listener.h"
#include "ratelimit.h"
#include "worker.h"

struct frames {
	size_t lens[16];
	int n;
	int stop_after;
};

static int on_frame(void *arg, const uint8_t *f, size_t len)
{
	struct frames *fr = arg;

	(void)f;
	fr->lens[fr->n++] = len;
	return fr->stop_after && fr->n >= fr->stop_after;
}

/* A STUN header with the given attribute length. */
static size_t stun_frame(uint8_t *buf, uint16_t attr_len)
{
	memset(buf, 0, 20u + attr_len);
	buf[1] = 0x01;
	buf[2] = (uint8_t)(attr_len >> 8);
	buf[3] = (uint8_t)attr_len;
	buf[4] = 0x21; buf[5] = 0x12; buf[6] = 0xA4; buf[7] = 0x42;
	return 20u + attr_len;
}

static void test_stream_whole_and_split(void)
{
	uint8_t buf[256];
	struct stream_rx rx = { 0 };
	struct frames fr = { 0 };
	size_t a = stun_frame(buf, 8);
	size_t b = stun_frame(buf + a, 0);

	/* Two frames in one read. */
	CU_ASSERT_EQUAL(stream_rx_feed(&rx, buf, a + b, on_frame, &fr), 0);
	CU_ASSERT_EQUAL(fr.n, 2);
	CU_ASSERT_EQUAL(fr.lens[0], 28);
	CU_ASSERT_EQUAL(fr.lens[1], 20);
	CU_ASSERT_EQUAL(rx.len, 0);
	/* One frame byte by byte. */
	fr.n = 0;
	for (size_t i = 0; i < a; i++)
		CU_ASSERT_EQUAL(stream_rx_feed(&rx, buf + i, 1, on_frame, &fr), 0);
	CU_ASSERT_EQUAL(fr.n, 1);
	CU_ASSERT_EQUAL(fr.lens[0], 28);
	CU_ASSERT_EQUAL(rx.len, 0);
	stream_rx_free(&rx);
}

static void test_stream_channeldata_padding(void)
{
	/* ChannelData on a stream is padded to 4 (RFC 8656 s12.5). */
	uint8_t buf[16] = { 0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0 };
	struct stream_rx rx = { 0 };
	struct frames fr = { 0 };

	CU_ASSERT_EQUAL(stream_rx_feed(&rx, buf, 12, on_frame, &fr), 0);
	CU_ASSERT_EQUAL(fr.n, 1);
	CU_ASSERT_EQUAL(fr.lens[0], 12);
	stream_rx_free(&rx);
}

static void test_stream_garbage_and_stop(void)
{
	uint8_t junk[8] = { 0xff, 1, 2, 3, 4, 5, 6, 7 };
	uint8_t buf[64];
	struct stream_rx rx = { 0 };
	struct frames fr = { .stop_after = 1 };
	size_t a = stun_frame(buf, 0);

	CU_ASSERT(stream_rx_feed(&rx, junk, sizeof(junk), on_frame, &fr) < 0);
	stun_frame(buf + a, 0);
	CU_ASSERT_EQUAL(stream_rx_feed(&rx, buf, 2 * a, on_frame, &fr), 1);
	CU_ASSERT_EQUAL(fr.n, 1);
	stream_rx_free(&rx);
}

static struct config *load(const char *text)
{
	char err[CFG_ERR_MAX];
	struct config *c = NULL;

	CU_ASSERT_EQUAL(config_load_string("t", text, NULL, &c, err, sizeof(err)), 0);
	return c;
}

static uint16_t port_of(const struct laddr *l)
{
	return ntohs(l->addr.in4.sin_port);
}

static void test_laddr_rfc5780_quad(void)
{
	struct config *c = load("listening-ip = 127.0.0.1\nlistening-ip = 127.0.0.2\n"
				"listening-ip = ::1\nlistening-port = 4000\n");
	struct laddr_set s;

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	laddr_set_build(&s, c);
	CU_ASSERT_EQUAL_FATAL(s.n, 5);
	/* A1:P1, A1:P2, A2:P1, A2:P2, then ::1 alone. */
	CU_ASSERT_EQUAL(port_of(&s.a[0]), 4000);
	CU_ASSERT_EQUAL(port_of(&s.a[1]), 4001);
	CU_ASSERT_EQUAL(s.a[0].alt_both, 3);
	CU_ASSERT_EQUAL(s.a[0].alt_ip, 2);
	CU_ASSERT_EQUAL(s.a[0].alt_port, 1);
	CU_ASSERT_EQUAL(s.a[3].alt_both, 0);
	CU_ASSERT_EQUAL(s.a[2].alt_port, 3);
	CU_ASSERT_EQUAL(s.a[1].alt_ip, 3);
	CU_ASSERT_EQUAL(s.a[4].addr.sa.sa_family, AF_INET6);
	CU_ASSERT_EQUAL(s.a[4].alt_both, -1);
	CU_ASSERT(!s.a[4].wildcard);
	config_put(c);
}

static void test_laddr_single_and_wildcard(void)
{
	struct config *c = load("");
	struct laddr_set s;

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	laddr_set_build(&s, c);
	CU_ASSERT_EQUAL(s.n, 2);
	CU_ASSERT(s.a[0].wildcard && s.a[1].wildcard);
	CU_ASSERT_EQUAL(s.a[0].alt_both, -1);
	config_put(c);
}

static void test_ratelimit(void)
{
	static struct ratelimit rl;
	stun_sockaddr a = { .in4 = { .sin_family = AF_INET } };
	stun_sockaddr b = a;
	int ok = 0;

	a.in4.sin_addr.s_addr = inet_addr("192.0.2.1");
	b.in4.sin_addr.s_addr = inet_addr("192.0.2.2");
	for (int i = 0; i < 20; i++)
		ok += ratelimit_allow(&rl, &a, 100.0, 5);
	CU_ASSERT_EQUAL(ok, 5);                       /* burst of one second */
	CU_ASSERT(ratelimit_allow(&rl, &b, 100.0, 5)); /* another source */
	CU_ASSERT(!ratelimit_allow(&rl, &a, 100.1, 5));
	CU_ASSERT(ratelimit_allow(&rl, &a, 100.5, 5)); /* refilled */
	CU_ASSERT(ratelimit_allow(&rl, &a, 100.5, 0)); /* 0 = unlimited */
}

int main(void)
{
	CU_pSuite s;
	unsigned fails;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("listener", NULL, NULL);
	CU_add_test(s, "stream: whole and split frames", test_stream_whole_and_split);
	CU_add_test(s, "stream: ChannelData padding", test_stream_channeldata_padding);
	CU_add_test(s, "stream: garbage, stop", test_stream_garbage_and_stop);
	CU_add_test(s, "laddr: RFC 5780 quad", test_laddr_rfc5780_quad);
	CU_add_test(s, "laddr: single, wildcard", test_laddr_single_and_wildcard);
	CU_add_test(s, "ratelimit", test_ratelimit);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
