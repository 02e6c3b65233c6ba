/* Unit tests for server/config.c: the turnserver.conf parser, command-line
 * overrides and validation. No network. */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

static char err[CFG_ERR_MAX];

static struct config *load(const char *text)
{
	struct config *c = NULL;
	int r = config_load_string("t.conf", text, NULL, &c, err, sizeof(err));

	CU_ASSERT_EQUAL(r, 0);
	if (r)
		fprintf(stderr, "unexpected error: %s\n", err);
	return c;
}

static int load_fails(const char *text)
{
	struct config *c = NULL;
	int r = config_load_string("t.conf", text, NULL, &c, err, sizeof(err));

	CU_ASSERT(r < 0);
	CU_ASSERT_PTR_NULL(c);
	return r < 0;
}

static struct config *load_args(const char *text, int argc, const char **argv)
{
	struct config_args a;
	struct config *c = NULL;

	CU_ASSERT_EQUAL_FATAL(config_args_parse(&a, argc, (char **)argv, err, sizeof(err)), 0);
	if (config_load_string("t.conf", text, &a, &c, err, sizeof(err)))
		fprintf(stderr, "unexpected error: %s\n", err);
	config_args_free(&a);
	return c;
}

static void test_defaults(void)
{
	struct config *c = load("");

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(c->listening_port, 3478);
	CU_ASSERT_EQUAL(c->alt_listening_port, 3479);
	CU_ASSERT_EQUAL(c->tls_listening_port, 5349);
	CU_ASSERT_EQUAL(c->min_port, 49152);
	CU_ASSERT_EQUAL(c->max_port, 65535);
	CU_ASSERT_EQUAL(c->workers, 0);
	CU_ASSERT(c->rendezvous);
	CU_ASSERT(!c->has_metrics);
	CU_ASSERT_EQUAL(c->log_level, LOG_INFO);
	CU_ASSERT_EQUAL(c->n_listen_ip, 2); /* wildcards of both families */
	CU_ASSERT_EQUAL(c->listen_ip[0].sa.sa_family, AF_INET);
	CU_ASSERT_EQUAL(c->listen_ip[1].sa.sa_family, AF_INET6);
	CU_ASSERT_STRING_EQUAL(c->realm, "natkit");
	config_put(c);
}

static void test_syntax_forms(void)
{
	struct config *c = load("# comment\n"
				"   \n"
				"listening-port = 4000\n"
				"alt-listening-port=4002   # trailing comment\n"
				"tls-listening-port 5000\n"
				"allow-loopback-peers\n"
				"no-rendezvous\n"
				"realm = \"example.org\"\n"
				"user = bob:pa#ss\n"
				"fingerprint\n"
				"lt-cred-mech\n");

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(c->listening_port, 4000);
	CU_ASSERT_EQUAL(c->alt_listening_port, 4002);
	CU_ASSERT_EQUAL(c->tls_listening_port, 5000);
	CU_ASSERT(c->allow_loopback_peers);
	CU_ASSERT(!c->rendezvous);
	CU_ASSERT_STRING_EQUAL(c->realm, "example.org");
	CU_ASSERT_EQUAL_FATAL(c->n_users, 1);
	CU_ASSERT_STRING_EQUAL(c->users[0].name, "bob");
	CU_ASSERT_STRING_EQUAL(c->users[0].password, "pa#ss");
	config_put(c);
}

static void test_every_key(void)
{
	struct config *c = load("listening-ip = 127.0.0.1\n"
				"listening-ip = 127.0.0.2\n"
				"listening-ip = ::1\n"
				"relay-ip = 10.0.0.1\n"
				"relay-ip = [2001:db8::1]\n"
				"external-ip = 203.0.113.5/10.0.0.1\n"
				"min-port = 50000\n"
				"max-port = 50100\n"
				"user = alice:secret1\n"
				"static-auth-secret = s3cr3t\n"
				"static-auth-secret = other\n"
				"denied-peer-ip = 10.0.0.0-10.255.255.255\n"
				"denied-peer-ip = 192.168.0.0/16\n"
				"allowed-peer-ip = 10.1.2.3\n"
				"user-quota = 10\n"
				"total-quota = 100\n"
				"max-bps = 3000000\n"
				"log-file = /tmp/stund-unit.log\n"
				"workers = 3\n"
				"log-level = debug\n"
				"metrics-listen = 127.0.0.1:9641\n"
				"rendezvous = off\n"
				"max-connections = 50\n"
				"idle-timeout = 20\n"
				"rate-limit = 7\n"
				"rate-limit-redirect = 8\n"
				"max-padding = 600\n"
				"no-tls\n"
				"no-software-attribute = yes\n");

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(c->n_listen_ip, 3);
	CU_ASSERT_EQUAL(c->listen_ip[2].sa.sa_family, AF_INET6);
	CU_ASSERT_EQUAL(c->n_relay_ip, 2);
	CU_ASSERT_EQUAL(c->relay_ip[1].sa.sa_family, AF_INET6);
	CU_ASSERT(c->has_external_ip && c->has_external_private);
	CU_ASSERT_EQUAL(c->external_ip.in4.sin_addr.s_addr, inet_addr("203.0.113.5"));
	CU_ASSERT_EQUAL(c->external_private.in4.sin_addr.s_addr, inet_addr("10.0.0.1"));
	CU_ASSERT_EQUAL(c->min_port, 50000);
	CU_ASSERT_EQUAL(c->max_port, 50100);
	CU_ASSERT_EQUAL(c->n_users, 1);
	CU_ASSERT_EQUAL_FATAL(c->n_secrets, 2);
	CU_ASSERT_STRING_EQUAL(c->secrets[0], "s3cr3t");
	CU_ASSERT_EQUAL_FATAL(c->n_denied_peer, 2);
	CU_ASSERT_EQUAL(c->denied_peer[0].lo[0], 10);
	CU_ASSERT_EQUAL(c->denied_peer[0].hi[1], 255);
	CU_ASSERT_EQUAL(c->denied_peer[1].lo[0], 192);
	CU_ASSERT_EQUAL(c->denied_peer[1].lo[2], 0);
	CU_ASSERT_EQUAL(c->denied_peer[1].hi[2], 255);
	CU_ASSERT_EQUAL(c->denied_peer[1].hi[3], 255);
	CU_ASSERT_EQUAL(c->n_allowed_peer, 1);
	CU_ASSERT_EQUAL(c->user_quota, 10);
	CU_ASSERT_EQUAL(c->total_quota, 100);
	CU_ASSERT_EQUAL(c->max_bps, 3000000);
	CU_ASSERT_STRING_EQUAL(c->log_file, "/tmp/stund-unit.log");
	CU_ASSERT_EQUAL(c->workers, 3);
	CU_ASSERT_EQUAL(c->log_level, LOG_DEBUG);
	CU_ASSERT(c->has_metrics);
	CU_ASSERT_EQUAL(ntohs(c->metrics_listen.in4.sin_port), 9641);
	CU_ASSERT(!c->rendezvous);
	CU_ASSERT_EQUAL(c->max_connections, 50);
	CU_ASSERT_EQUAL(c->idle_timeout, 20);
	CU_ASSERT_EQUAL(c->rate_limit, 7);
	CU_ASSERT_EQUAL(c->rate_limit_redirect, 8);
	CU_ASSERT_EQUAL(c->max_padding, 600);
	CU_ASSERT(c->no_tls);
	CU_ASSERT(c->no_software_attribute);
	config_put(c);
}

static void test_workers_auto(void)
{
	struct config *c = load("workers = auto\n");

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(c->workers, 0);
	config_put(c);
	if (load_fails("workers = 0\n"))
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "auto or a number"));
}

static void test_error_names_file_line_key(void)
{
	if (load_fails("listening-ip = 127.0.0.1\n\nlistening-port = 70000\n")) {
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.conf:3"));
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "listening-port"));
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "70000"));
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "1-65535"));
	}
	if (load_fails("# x\nbogus-key = 1\n")) {
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.conf:2"));
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "bogus-key"));
	}
	if (load_fails("listening-ip = 300.1.1.1\n"))
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "IPv4 or IPv6"));
	if (load_fails("log-level = loud\n"))
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "error, warn, info or debug"));
	if (load_fails("allow-loopback-peers = maybe\n"))
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "yes/no"));
	if (load_fails("realm\n"))
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "needs a value"));
	if (load_fails("metrics-listen = 127.0.0.1\n"))
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "IP:PORT"));
	if (load_fails("denied-peer-ip = 10.0.0.9-10.0.0.1\n"))
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "denied-peer-ip"));
	if (load_fails("external-ip = 1.2.3.4/::1\n"))
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "same family"));
	if (load_fails("listening-ip = 127.0.0.1\nlistening-ip = 127.0.0.1\n"))
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "twice"));
}

static void test_secrets_never_echoed(void)
{
	if (load_fails("user = nocolonhunter2\n")) {
		CU_ASSERT_PTR_NULL(strstr(err, "hunter2"));
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "name:password"));
	}
	if (load_fails("user = :hunter2\n"))
		CU_ASSERT_PTR_NULL(strstr(err, "hunter2"));
}

static void test_cross_key_validation(void)
{
	if (load_fails("min-port = 60000\nmax-port = 50000\n")) {
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.conf:1"));
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "min-port"));
	}
	if (load_fails("listening-port = 4000\nalt-listening-port = 4000\n")) {
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.conf:2"));
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "alt-listening-port"));
	}
	if (load_fails("tls-listening-port = 3478\n"))
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "tls-listening-port"));
	if (load_fails("cert = /etc/hostname\n"))
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "together"));
	if (load_fails("cert = /nonexistent/c.pem\npkey = /nonexistent/k.pem\n")) {
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.conf:1"));
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot read"));
	}
}

static void test_userdb(void)
{
	char path[] = "/tmp/stund-userdb-XXXXXX";
	int fd = mkstemp(path);
	char text[256];
	struct config *c;
	FILE *f;

	CU_ASSERT_FATAL(fd >= 0);
	f = fdopen(fd, "w");
	fputs("# users\nann:pw1\n\nben:pw2\n", f);
	fclose(f);
	snprintf(text, sizeof(text), "user = zed:pw0\nuserdb = %s\n", path);
	c = load(text);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL_FATAL(c->n_users, 3);
	CU_ASSERT_STRING_EQUAL(c->users[1].name, "ann");
	CU_ASSERT_STRING_EQUAL(c->users[2].password, "pw2");
	config_put(c);

	f = fopen(path, "w");
	fputs("ann:pw1\nbroken-line-secret\n", f);
	fclose(f);
	if (load_fails(text)) {
		CU_ASSERT_PTR_NOT_NULL(strstr(err, ":2: expected name:password"));
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "userdb"));
		CU_ASSERT_PTR_NULL(strstr(err, "broken-line-secret"));
	}
	unlink(path);
}

static void test_cli_override(void)
{
	const char *argv[] = { "stund", "--listening-port", "5000", "--workers=2",
			       "--allow-loopback-peers", "--listening-ip", "::1",
			       "--log-level=warn" };
	struct config *c = load_args("listening-port = 4000\n"
				     "listening-ip = 127.0.0.1\n"
				     "listening-ip = 127.0.0.2\n"
				     "workers = 1\n", 8, argv);

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(c->listening_port, 5000);
	CU_ASSERT_EQUAL(c->alt_listening_port, 5001);
	CU_ASSERT_EQUAL(c->workers, 2);
	CU_ASSERT(c->allow_loopback_peers);
	CU_ASSERT_EQUAL(c->n_listen_ip, 1); /* the command line replaces the list */
	CU_ASSERT_EQUAL(c->listen_ip[0].sa.sa_family, AF_INET6);
	CU_ASSERT_EQUAL(c->log_level, LOG_WARN);
	config_put(c);
}

static void test_cli_overrides_bad_file_value(void)
{
	const char *argv[] = { "stund", "--listening-port=5000" };
	struct config *c = load_args("listening-port = nope\n", 2, argv);

	CU_ASSERT_PTR_NOT_NULL(c);
	config_put(c);
}

static void test_cli_errors(void)
{
	struct config_args a;
	const char *unknown[] = { "stund", "--frobnicate" };
	const char *missing[] = { "stund", "--listening-port" };
	const char *stray[] = { "stund", "oops" };
	const char *ok[] = { "stund", "-c", "x.conf", "--check-config", "--version" };
	const char *bad[] = { "stund", "--listening-port=0" };
	struct config *c = NULL;

	CU_ASSERT(config_args_parse(&a, 2, (char **)unknown, err, sizeof(err)) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "--frobnicate"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "--help"));
	config_args_free(&a);
	CU_ASSERT(config_args_parse(&a, 2, (char **)missing, err, sizeof(err)) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "needs a value"));
	config_args_free(&a);
	CU_ASSERT(config_args_parse(&a, 2, (char **)stray, err, sizeof(err)) < 0);
	config_args_free(&a);
	CU_ASSERT_EQUAL(config_args_parse(&a, 5, (char **)ok, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(a.conf_path, "x.conf");
	CU_ASSERT(a.check_config && a.version);
	config_args_free(&a);
	CU_ASSERT_EQUAL(config_args_parse(&a, 2, (char **)bad, err, sizeof(err)), 0);
	CU_ASSERT(config_load_string(NULL, NULL, &a, &c, err, sizeof(err)) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "command line"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "listening-port"));
	config_args_free(&a);
}

static void test_refcount_and_same_listeners(void)
{
	struct config *a = load("listening-ip = 127.0.0.1\nrealm = one\n");
	struct config *b = load("listening-ip = 127.0.0.1\nrealm = two\n");
	struct config *d = load("listening-ip = 127.0.0.2\n");
	const struct config *ref;

	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	CU_ASSERT(config_same_listeners(a, b));
	CU_ASSERT(!config_same_listeners(a, d));
	ref = config_get(a);
	config_put(a);
	CU_ASSERT_STRING_EQUAL(ref->realm, "one"); /* still alive */
	config_put(ref);
	config_put(b);
	config_put(d);
}

static void test_describe_hides_secrets(void)
{
	struct config *c = load("user = u:topsecretpw\nstatic-auth-secret = restsecret\n");
	char buf[1024];

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	config_describe(c, buf, sizeof(buf));
	CU_ASSERT_PTR_NULL(strstr(buf, "topsecretpw"));
	CU_ASSERT_PTR_NULL(strstr(buf, "restsecret"));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "users 1"));
	config_put(c);
}

int main(void)
{
	CU_pSuite s;
	unsigned fails;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("config", NULL, NULL);
	CU_add_test(s, "defaults", test_defaults);
	CU_add_test(s, "syntax forms", test_syntax_forms);
	CU_add_test(s, "every key", test_every_key);
	CU_add_test(s, "workers auto", test_workers_auto);
	CU_add_test(s, "errors name file:line and key", test_error_names_file_line_key);
	CU_add_test(s, "secrets never echoed", test_secrets_never_echoed);
	CU_add_test(s, "cross-key validation", test_cross_key_validation);
	CU_add_test(s, "userdb", test_userdb);
	CU_add_test(s, "command line overrides", test_cli_override);
	CU_add_test(s, "command line overrides a bad file value", test_cli_overrides_bad_file_value);
	CU_add_test(s, "command line errors", test_cli_errors);
	CU_add_test(s, "refcount, same listeners", test_refcount_and_same_listeners);
	CU_add_test(s, "describe hides secrets", test_describe_hides_secrets);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
