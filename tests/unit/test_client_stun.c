/* Unit tests for client/stun_client.c (the RFC 8489 s6.2.1 retransmission
 * schedule) and client/settings.c (config file, HOST[:PORT]). No network. */
#include <CUnit/Basic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "settings.h"
#include "stun_client.h"
#include "unit_util.h"

/* "requests would be sent at times 0 ms, 500 ms, 1500 ms, 3500 ms, 7500 ms,
 * 15500 ms, and 31500 ms ... timed out after 39500 ms" */
static void test_rto_default(void)
{
	const struct stun_rto p = STUN_RTO_DEFAULT;
	const unsigned sends[] = { 0, 500, 1500, 3500, 7500, 15500, 31500 };
	unsigned t = 0;

	CU_ASSERT_EQUAL(p.rto_ms, 500);
	CU_ASSERT_EQUAL(p.rc, 7);
	CU_ASSERT_EQUAL(p.rm, 16);
	for (unsigned i = 0; i < 7; i++) {
		CU_ASSERT_EQUAL(t, sends[i]);
		t += stun_rto_delay(&p, i);
	}
	CU_ASSERT_EQUAL(t, 39500);
	CU_ASSERT_EQUAL(stun_rto_total(&p), 39500);
}

static void test_rto_custom(void)
{
	const struct stun_rto p = { 100, 3, 4 };

	CU_ASSERT_EQUAL(stun_rto_delay(&p, 0), 100);
	CU_ASSERT_EQUAL(stun_rto_delay(&p, 1), 200);
	CU_ASSERT_EQUAL(stun_rto_delay(&p, 2), 400); /* Rm * RTO after the last */
	CU_ASSERT_EQUAL(stun_rto_total(&p), 700);
	const struct stun_rto one = { 250, 1, 2 };
	CU_ASSERT_EQUAL(stun_rto_delay(&one, 0), 500);
	CU_ASSERT_EQUAL(stun_rto_total(&one), 500);
	const struct stun_rto zero = { 250, 0, 2 }; /* Rc 0 means one request */
	CU_ASSERT_EQUAL(stun_rto_total(&zero), 500);
}

static char *write_tmp(const char *text)
{
	static char path[64];
	int fd;

	strcpy(path, "/tmp/natclient-unit-XXXXXX");
	fd = mkstemp(path);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_config_file(void)
{
	struct settings s = { 0 };
	char err[512] = "";
	char *p = write_tmp("# natclient\n server = tls://127.0.0.1:3478 \n\nuser=alice # me\n"
			    "password = s3cret = yes\nrelay-fallback = 2.5\nca = /etc/ca.pem\n");

	CU_ASSERT_EQUAL(settings_load_file(&s, p, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(s.server, "tls://127.0.0.1:3478");
	CU_ASSERT_STRING_EQUAL(s.ca, "/etc/ca.pem");
	CU_ASSERT_STRING_EQUAL(s.user, "alice");
	CU_ASSERT_STRING_EQUAL(s.password, "s3cret = yes");
	CU_ASSERT_EQUAL(s.relay_fallback_ms, 2500);
	unlink(p);

	/* --server given first wins over the file */
	struct settings s2 = { .server = "10.1.1.1" };
	p = write_tmp("server = 127.0.0.1\n");
	CU_ASSERT_EQUAL(settings_load_file(&s2, p, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(s2.server, "10.1.1.1");
	unlink(p);
}

static void test_config_errors(void)
{
	struct settings s = { 0 };
	char err[512] = "";
	char *p = write_tmp("server = x\nsevrer = y\n");

	CU_ASSERT(settings_load_file(&s, p, err, sizeof(err)) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, ":2:"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "sevrer"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "accepted keys"));
	unlink(p);
	p = write_tmp("just words\n");
	CU_ASSERT(settings_load_file(&s, p, err, sizeof(err)) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "key = value"));
	unlink(p);
	p = write_tmp("relay-fallback = soon\n");
	CU_ASSERT(settings_load_file(&s, p, err, sizeof(err)) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "0.05 to 600"));
	unlink(p);
	/* a consent timeout shorter than the checks' period cannot hold */
	p = write_tmp("consent-timeout = 5\n");
	CU_ASSERT(settings_load_file(&s, p, err, sizeof(err)) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, ":1: consent-timeout takes seconds from 8 to 600"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "RFC 7675"));
	unlink(p);
	p = write_tmp("consent-timeout = 8\nrelay-fallback = 0.2\n");
	CU_ASSERT_EQUAL(settings_load_file(&s, p, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(s.consent_timeout_ms, 8000);
	CU_ASSERT_EQUAL(s.relay_fallback_ms, 200);
	unlink(p);
	CU_ASSERT(settings_load_file(&s, "/nonexistent/natclient.conf", err, sizeof(err)) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent/natclient.conf"));
}

static void test_env(void)
{
	struct settings s = { .user = "bob" };

	setenv("NATCLIENT_SERVER", "127.0.0.9", 1);
	setenv("NATCLIENT_USER", "eve", 1);
	setenv("NATCLIENT_PASSWORD", "pw", 1);
	settings_load_env(&s);
	CU_ASSERT_STRING_EQUAL(s.server, "127.0.0.9");
	CU_ASSERT_STRING_EQUAL(s.user, "bob");
	CU_ASSERT_STRING_EQUAL(s.password, "pw");
}

static void test_resolve(void)
{
	stun_sockaddr a;
	char err[256], buf[64];

	CU_ASSERT_EQUAL(settings_resolve("127.0.0.1:5000", 3478, &a, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(stun_sockaddr_str(&a, buf, sizeof(buf)), "127.0.0.1:5000");
	CU_ASSERT_EQUAL(settings_resolve("127.0.0.2", 3478, &a, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(stun_sockaddr_str(&a, buf, sizeof(buf)), "127.0.0.2:3478");
	CU_ASSERT_EQUAL(settings_resolve("[::1]:7", 3478, &a, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(stun_sockaddr_str(&a, buf, sizeof(buf)), "[::1]:7");
	CU_ASSERT_EQUAL(settings_resolve("::1", 3478, &a, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(stun_sockaddr_port(&a), 3478);
	CU_ASSERT(settings_resolve("127.0.0.1:0", 3478, &a, err, sizeof(err)) < 0);
	CU_ASSERT(settings_resolve("127.0.0.1:99999", 3478, &a, err, sizeof(err)) < 0);
	CU_ASSERT(settings_resolve("[::1", 3478, &a, err, sizeof(err)) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "HOST[:PORT]"));
}

/* --server [udp://|tcp://|tls://]HOST[:PORT]: transport, default port per
 * transport (5349 for TLS, RFC 8489 s6.2.2), the host name kept for TLS. */
static void test_server_spec(void)
{
	struct settings_server v;
	char err[256] = "";

	CU_ASSERT_EQUAL(settings_server_parse("127.0.0.1:5000", &v, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(v.tp, SETTINGS_UDP);
	CU_ASSERT_EQUAL(stun_sockaddr_port(&v.addr), 5000);
	CU_ASSERT_EQUAL(settings_server_parse("udp://127.0.0.1", &v, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(v.tp, SETTINGS_UDP);
	CU_ASSERT_EQUAL(stun_sockaddr_port(&v.addr), 3478);
	CU_ASSERT_EQUAL(settings_server_parse("tcp://127.0.0.1", &v, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(v.tp, SETTINGS_TCP);
	CU_ASSERT_EQUAL(stun_sockaddr_port(&v.addr), 3478);
	CU_ASSERT_EQUAL(settings_server_parse("TLS://[::1]", &v, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(v.tp, SETTINGS_TLS);
	CU_ASSERT_EQUAL(stun_sockaddr_port(&v.addr), 5349);
	CU_ASSERT_STRING_EQUAL(v.host, "::1");
	CU_ASSERT_EQUAL(settings_server_parse("tls://127.0.0.1:443", &v, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(stun_sockaddr_port(&v.addr), 443);
	CU_ASSERT_STRING_EQUAL(v.host, "127.0.0.1");
	CU_ASSERT_STRING_EQUAL(settings_transport_str(SETTINGS_TLS), "tls");
	CU_ASSERT(settings_server_parse("sctp://127.0.0.1", &v, err, sizeof(err)) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "tcp://"));
	CU_ASSERT(settings_server_parse("tcp://", &v, err, sizeof(err)) < 0);
	CU_ASSERT(settings_server_parse("tcp://127.0.0.1:0", &v, err, sizeof(err)) < 0);
}

int main(void)
{
	static const struct unit_case cases[] = {
		{ "RTO schedule, RFC 8489 defaults", test_rto_default },
		{ "RTO schedule, custom Rc/Rm", test_rto_custom },
		{ "config file", test_config_file },
		{ "config file errors name file:line", test_config_errors },
		{ "environment fills the gaps", test_env },
		{ "HOST[:PORT]", test_resolve },
		{ "[tcp://|tls://]HOST[:PORT]", test_server_spec },
		{ NULL, NULL },
	};

	return unit_run("client_stun", cases);
}
