/* dtls_stun_client: a STUN Binding client over DTLS (RFC 8489 s6.2.2), for
 * the integration tests (Python's ssl module has no DTLS).
 *
 *   dtls_stun_client [--stdin] HOST PORT
 *
 * Makes a DTLS 1.2 handshake with HOST:PORT (the certificate is not
 * verified; its subject is printed), sends a Binding request with
 * FINGERPRINT and prints what the success response says:
 *   subject CN=...
 *   local 127.0.0.1:40000
 *   origin 127.0.0.1:5349     (if the response has RESPONSE-ORIGIN)
 *   mapped 127.0.0.1:40000
 * With --stdin it keeps the association and sends one more Binding per line
 * read from stdin (printing "mapped ..." each time), then closes with
 * close_notify at EOF. Exit status 0 when every Binding was answered. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/timing.h>
#include <mbedtls/x509_crt.h>

#include "stun_msg.h"

#define READ_TIMEOUT_MS 1000
#define TRIES 4

struct client {
	mbedtls_net_context net;
	mbedtls_entropy_context ent;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_ssl_config conf;
	mbedtls_ssl_context ssl;
	mbedtls_timing_delay_context timer;
};

static int fail(const char *what, int ret)
{
	char buf[160];

	mbedtls_strerror(ret, buf, sizeof(buf));
	fprintf(stderr, "dtls_stun_client: %s: %s (-0x%04x)\n", what, buf, (unsigned)-ret);
	return -1;
}

static int client_setup(struct client *c, const char *host, const char *port)
{
	int ret;

	ret = mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->ent, NULL, 0);
	if (ret)
		return fail("rng", ret);
	ret = mbedtls_net_connect(&c->net, host, port, MBEDTLS_NET_PROTO_UDP);
	if (ret)
		return fail("connect", ret);
	ret = mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT,
					  MBEDTLS_SSL_TRANSPORT_DATAGRAM, MBEDTLS_SSL_PRESET_DEFAULT);
	if (ret)
		return fail("config", ret);
	/* Test certificates are self-signed: print the subject, do not verify. */
	mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_NONE);
	mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &c->drbg);
	mbedtls_ssl_conf_read_timeout(&c->conf, READ_TIMEOUT_MS);
	mbedtls_ssl_conf_handshake_timeout(&c->conf, 500, 4000);
	ret = mbedtls_ssl_setup(&c->ssl, &c->conf);
	if (ret)
		return fail("setup", ret);
	mbedtls_ssl_set_bio(&c->ssl, &c->net, mbedtls_net_send, NULL, mbedtls_net_recv_timeout);
	mbedtls_ssl_set_timer_cb(&c->ssl, &c->timer, mbedtls_timing_set_delay,
				 mbedtls_timing_get_delay);
	return 0;
}

static int client_handshake(struct client *c)
{
	const mbedtls_x509_crt *crt;
	char dn[256];
	int ret;

	do
		ret = mbedtls_ssl_handshake(&c->ssl);
	while (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE);
	if (ret)
		return fail("handshake", ret);
	crt = mbedtls_ssl_get_peer_cert(&c->ssl);
	if (crt && mbedtls_x509_dn_gets(dn, sizeof(dn), &crt->subject) > 0)
		printf("subject %s\n", dn);
	return 0;
}

static void print_local(const struct client *c)
{
	stun_sockaddr a;
	socklen_t al = sizeof(a);
	char s[64];

	if (getsockname(c->net.fd, &a.sa, &al) == 0)
		printf("local %s\n", stun_sockaddr_str(&a, s, sizeof(s)));
}

static int build_request(struct client *c, uint8_t *buf, size_t cap, uint8_t tid[STUN_TID_LEN])
{
	struct stun_builder b;

	mbedtls_ctr_drbg_random(&c->drbg, tid, STUN_TID_LEN);
	stun_build_init(&b, buf, cap, STUN_METHOD_BINDING, STUN_CLASS_REQUEST, tid);
	stun_build_str(&b, STUN_ATTR_SOFTWARE, "natkit dtls_stun_client");
	stun_build_fingerprint(&b);
	return stun_build_finish(&b);
}

/* The answer to tid, or 1 for "not it / nothing yet", or -1. */
static int check_response(const uint8_t *buf, size_t len, const uint8_t tid[STUN_TID_LEN])
{
	struct stun_msg m;
	char s[64];

	if (stun_msg_parse(&m, buf, len) || memcmp(m.tid, tid, STUN_TID_LEN))
		return 1;
	if (m.method != STUN_METHOD_BINDING || m.cls != STUN_CLASS_SUCCESS) {
		fprintf(stderr, "dtls_stun_client: response class %u code %u\n", m.cls,
			m.error.code);
		return -1;
	}
	if (!stun_msg_has(&m, STUN_ATTR_XOR_MAPPED_ADDRESS)) {
		fprintf(stderr, "dtls_stun_client: no XOR-MAPPED-ADDRESS\n");
		return -1;
	}
	if (stun_msg_has(&m, STUN_ATTR_RESPONSE_ORIGIN))
		printf("origin %s\n", stun_sockaddr_str(&m.response_origin, s, sizeof(s)));
	printf("mapped %s\n", stun_sockaddr_str(&m.xor_mapped, s, sizeof(s)));
	fflush(stdout);
	return 0;
}

/* One Binding transaction, retransmitted over the (unreliable) association. */
static int binding(struct client *c)
{
	uint8_t req[256], resp[2048], tid[STUN_TID_LEN];
	int len = build_request(c, req, sizeof(req), tid);
	int ret;

	if (len < 0)
		return -1;
	for (int i = 0; i < TRIES; i++) {
		ret = mbedtls_ssl_write(&c->ssl, req, (size_t)len);
		if (ret < 0)
			return fail("write", ret);
		for (;;) {
			ret = mbedtls_ssl_read(&c->ssl, resp, sizeof(resp));
			if (ret == MBEDTLS_ERR_SSL_TIMEOUT)
				break;
			if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
				continue;
			if (ret <= 0)
				return fail("read", ret ? ret : MBEDTLS_ERR_SSL_CONN_EOF);
			ret = check_response(resp, (size_t)ret, tid);
			if (ret <= 0)
				return ret;
		}
	}
	fprintf(stderr, "dtls_stun_client: no answer to Binding\n");
	return -1;
}

static int run(struct client *c, int argc, char **argv)
{
	bool stdin_mode = argc == 4 && !strcmp(argv[1], "--stdin");
	char line[256];

	if (argc != 3 && !stdin_mode) {
		fprintf(stderr, "usage: dtls_stun_client [--stdin] HOST PORT\n");
		return 2;
	}
	if (client_setup(c, argv[argc - 2], argv[argc - 1]) || client_handshake(c))
		return 1;
	print_local(c);
	if (binding(c))
		return 1;
	while (stdin_mode && fgets(line, sizeof(line), stdin)) {
		if (binding(c))
			return 1;
	}
	mbedtls_ssl_close_notify(&c->ssl);
	return 0;
}

int main(int argc, char **argv)
{
	struct client c;
	int ret;

	setvbuf(stdout, NULL, _IOLBF, 0);
	mbedtls_net_init(&c.net);
	mbedtls_entropy_init(&c.ent);
	mbedtls_ctr_drbg_init(&c.drbg);
	mbedtls_ssl_config_init(&c.conf);
	mbedtls_ssl_init(&c.ssl);
	ret = run(&c, argc, argv);
	mbedtls_ssl_free(&c.ssl);
	mbedtls_ssl_config_free(&c.conf);
	mbedtls_ctr_drbg_free(&c.drbg);
	mbedtls_entropy_free(&c.ent);
	mbedtls_net_free(&c.net);
	return ret;
}
