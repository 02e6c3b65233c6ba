/* natclient: NAT discovery and peer-to-peer connections.
 *
 *   natclient [--server [tcp://|tls://]HOST[:PORT]] [--config FILE] [--json] [-v] COMMAND
 *
 * This file is the command line only: options, settings, and printing what
 * the modules (discover, turn_client, ...) found. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ev.h>

#include "discover.h"
#include "relay_cmd.h"
#include "settings.h"
#include "tunnel.h"

#define EXIT_USAGE 2

struct cli {
	const char *server;
	const char *config;
	const char *ca;
	bool insecure;
	bool json;
	int verbose;
	const char *command;
	int argc;          /* the command's own arguments */
	char **argv;
};

static const char usage_text[] =
	"usage: natclient [--server [tcp://|tls://]HOST[:PORT]] [--ca FILE] [--insecure]\n"
	"                 [--config FILE] [--json] [-v] COMMAND [ARGS]\n"
	"\n"
	"Commands:\n"
	"  discover [--lifetime] [--lifetime-max SECONDS]\n"
	"      Learn the public address and what NAT is in the way: RFC 5780 mapping\n"
	"      and filtering behaviour (RFC 4787 terms and the classic name: open\n"
	"      internet, full cone, restricted cone, port-restricted cone, symmetric),\n"
	"      hairpinning, and the NAT's port allocation (preserving, sequential with\n"
	"      its delta, random). --lifetime also measures how long an idle binding\n"
	"      lives (RFC 5780 s4.6), up to --lifetime-max seconds (default 60).\n"
	"      Needs a server with two IP addresses and two ports (RFC 5780).\n"
	"  listen ID [--expose HOST:PORT] [--relay auto|always|never] [--predict SPEC]\n"
	"      Register ID at the server (rendezvous) and accept connections to it,\n"
	"      one at a time. Data goes to stdout and comes from stdin, or with\n"
	"      --expose to and from a local UDP service that knows nothing of NATs.\n"
	"  connect ID [--local HOST:PORT] [--relay auto|always|never] [--timeout SECONDS]\n"
	"      Connect to the peer registered as ID. Candidates: host, server-\n"
	"      reflexive, and a TURN relay on the server (--relay auto: offered too,\n"
	"      lowest priority; always: only the relay; never: direct only). ICE\n"
	"      checks (RFC 8445) pick the path; consent checks (RFC 7675) keep it.\n"
	"      --local binds a local UDP port whose datagrams go to the peer.\n"
	"      Exits 1 with the reason if no path opens within --timeout (30 s).\n"
	"      --predict off|KEY=N,... (listen too): symmetric NATs with sequential\n"
	"      ports offer a window of predicted candidates: window=8 (1-10), ttl=0\n"
	"      (low-TTL datagrams that open the local NAT only; 2 in a one-hop lab),\n"
	"      cross=1 (both sides sequential: punch the windows crosswise first).\n"
	"      Random ports facing a cone: the birthday approach, sockets=256 (hard\n"
	"      side), pps=1000, packets=3000 (probing side), seconds=5.\n"
	"      Progress goes to stderr (with --json: one JSON object per line, e.g.\n"
	"      {\"event\":\"connected\",\"path\":\"direct\",...,\"ms\":42}).\n"
	"  relay PEER_HOST:PORT [--channel] [--lifetime SECONDS] [--refresh SECONDS]\n"
	"      Diagnostic: allocate a TURN relay on the server, permit PEER, and\n"
	"      exchange data with it through the relay: each stdin line is sent to\n"
	"      PEER, each datagram from PEER is printed. --channel binds a channel\n"
	"      (ChannelData) instead of Send/Data indications. --refresh refreshes\n"
	"      the allocation and permissions every SECONDS (default: before expiry).\n"
	"\n"
	"Options:\n"
	"  --server HOST[:PORT]  the STUN/TURN server (default port 3478), over UDP\n"
	"  --server tcp://HOST[:PORT], tls://HOST[:PORT]\n"
	"                        where UDP is blocked: listen/connect reach the server\n"
	"                        over one TCP or TLS connection (TURN over TCP, RFC 8656;\n"
	"                        tls default port 5349) and offer only the relayed\n"
	"                        candidate: the path goes through the relay; the peer\n"
	"                        may stay on UDP. A dropped connection is replaced\n"
	"                        (a new relay; connect offers again, listen registers\n"
	"                        again) for up to --timeout (listen: 30 s), then exit 1.\n"
	"                        udp://HOST[:PORT] is plain UDP.\n"
	"  --ca FILE             tls://: trust the CA certificates in FILE (PEM/DER;\n"
	"                        default: the system's); the certificate must also\n"
	"                        name HOST (DNS name, or CN)\n"
	"  --insecure            tls:// without any certificate check\n"
	"  --config FILE         read \"key = value\" lines: server, user, password, ca,\n"
	"                        relay-fallback (seconds before a relayed path may be\n"
	"                        chosen while direct checks go on; default 1.5),\n"
	"                        consent-timeout (seconds without a consent answer\n"
	"                        before the path is re-established; default 30,\n"
	"                        at least 8),\n"
	"                        max-sessions (listen --expose: peers served at once;\n"
	"                        default 16, more are declined with 486 Busy)\n"
	"  --json                machine-readable output: one JSON object per line\n"
	"  -v, --verbose         tell what is happening on stderr (twice: every packet)\n"
	"  -h, --help            this text\n"
	"  --version             the version\n"
	"\n"
	"The server and credentials come from --server / --config, else from the\n"
	"environment (NATCLIENT_SERVER, NATCLIENT_USER, NATCLIENT_PASSWORD), else a\n"
	"prompt on the terminal. A password is never read from the command line.\n"
	"\n"
	"Exit status: 0 success, 1 failure (the message says what to do), 2 usage.\n";

static void usage_error(const char *fmt, const char *arg)
{
	fputs("natclient: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\nTry 'natclient --help' for the commands and options.\n", stderr);
}

/* Global options may come before or after the command. */
static int parse_global(struct cli *cli, int argc, char **argv)
{
	static char *rest[256];
	int n = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage_text, stdout);
			exit(0);
		} else if (!strcmp(a, "--version")) {
			printf("natclient %s\n", NATKIT_VERSION);
			exit(0);
		} else if (!strcmp(a, "--json")) {
			cli->json = true;
		} else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			cli->verbose++;
		} else if (!strcmp(a, "-vv")) {
			cli->verbose += 2;
		} else if (!strcmp(a, "--insecure")) {
			cli->insecure = true;
		} else if (!strcmp(a, "--server") || !strcmp(a, "--config") || !strcmp(a, "--ca")) {
			if (i + 1 >= argc) {
				usage_error("%s needs a value", a);
				return -EINVAL;
			}
			*(!strcmp(a, "--server") ? &cli->server
			  : !strcmp(a, "--ca") ? &cli->ca : &cli->config) = argv[++i];
		} else if (!cli->command && a[0] == '-') {
			usage_error("unknown option %s", a);
			return -EINVAL;
		} else if (!cli->command) {
			cli->command = a;
		} else if (n < (int)(sizeof(rest) / sizeof(rest[0])) - 1) {
			rest[n++] = argv[i];
		}
	}
	cli->argc = n;
	cli->argv = rest;
	if (!cli->command) {
		usage_error("%s", "no command given (discover, listen ID, connect ID)");
		return -EINVAL;
	}
	return 0;
}

/* Settings: --server, then --config FILE, then the environment. */
static int load_settings(const struct cli *cli, struct settings *s)
{
	char err[512];

	memset(s, 0, sizeof(*s));
	if (cli->server)
		snprintf(s->server, sizeof(s->server), "%s", cli->server);
	if (cli->ca)
		snprintf(s->ca, sizeof(s->ca), "%s", cli->ca);
	s->insecure = cli->insecure;
	if (cli->config && settings_load_file(s, cli->config, err, sizeof(err)) < 0) {
		fprintf(stderr, "natclient: %s\n", err);
		return -EINVAL;
	}
	settings_load_env(s);
	return 0;
}

static int resolve_server(const struct settings *s, struct settings_server *out)
{
	char err[512];

	if (!s->server[0]) {
		fprintf(stderr, "natclient: no server given: use --server HOST[:PORT], a "
				"\"server = HOST\" line in --config FILE, or NATCLIENT_SERVER\n");
		return -EINVAL;
	}
	if (settings_server_parse(s->server, out, err, sizeof(err)) < 0) {
		fprintf(stderr, "natclient: server: %s\n", err);
		return -EINVAL;
	}
	return 0;
}

/* ---- discover ---- */

static void print_discover_json(const struct discover_result *r, const char *server)
{
	char pub[64], loc[64], other[64];

	printf("{\"server\":\"%s\",\"local\":\"%s\",\"public\":\"%s\"", server,
	       stun_sockaddr_str(&r->local, loc, sizeof(loc)),
	       stun_sockaddr_str(&r->public_addr, pub, sizeof(pub)));
	if (r->rfc5780)
		printf(",\"other_address\":\"%s\"", stun_sockaddr_str(&r->other, other, sizeof(other)));
	printf(",\"mapping\":\"%s\",\"filtering\":\"%s\",\"port_allocation\":\"%s\"",
	       nat_mapping_str(r->mapping), nat_filtering_str(r->filtering),
	       nat_port_alloc_str(r->port_alloc));
	if (r->port_alloc == NAT_PORT_SEQUENTIAL)
		printf(",\"delta\":%d", r->delta);
	printf(",\"ports\":[");
	for (int i = 0; i < r->n_ports; i++)
		printf("%s%u", i ? "," : "", r->ports[i]);
	printf("],\"hairpinning\":%s", r->hairpinning == 1 ? "true" : "false");
	printf(",\"nat_type\":\"%s\"", nat_type_name(r->mapping, r->filtering));
	if (r->lifetime_run && r->lifetime_supported) {
		printf(",\"lifetime\":{\"alive_s\":%u,", r->lifetime_min_s);
		if (r->lifetime_max_s)
			printf("\"expired_s\":%u}", r->lifetime_max_s);
		else
			printf("\"expired_s\":null}");
	}
	printf(",\"ms\":%u}\n", r->elapsed_ms);
}

static const char *mapping_words(enum nat_mapping m)
{
	return m == NAT_MAP_NONE ? "none: the public address is this host's own (no NAT)"
				 : nat_mapping_str(m);
}

static void print_lifetime(const struct discover_result *r)
{
	if (!r->lifetime_run)
		return;
	if (!r->lifetime_supported)
		printf("Binding lifetime:  not measurable: the server refused RESPONSE-PORT\n");
	else if (!r->lifetime_max_s)
		printf("Binding lifetime:  at least %u s\n", r->lifetime_min_s);
	else
		printf("Binding lifetime:  between %u and %u s\n", r->lifetime_min_s,
		       r->lifetime_max_s);
}

static void print_discover_text(const struct discover_result *r)
{
	char pub[64], loc[64];

	printf("Public address:    %s (local %s)\n",
	       stun_sockaddr_str(&r->public_addr, pub, sizeof(pub)),
	       stun_sockaddr_str(&r->local, loc, sizeof(loc)));
	if (!r->rfc5780)
		printf("Note: the server does not support RFC 5780 (no OTHER-ADDRESS), so "
		       "mapping and filtering cannot be tested; use a server with two "
		       "addresses.\n");
	printf("Mapping:           %s\n", mapping_words(r->mapping));
	printf("Filtering:         %s\n", nat_filtering_str(r->filtering));
	printf("Port allocation:   %s", nat_port_alloc_str(r->port_alloc));
	if (r->port_alloc == NAT_PORT_SEQUENTIAL)
		printf(", delta %+d", r->delta);
	printf(" (local port %u ->", r->ports_local);
	for (int i = 0; i < r->n_ports; i++)
		printf(" %u", r->ports[i]);
	printf(")\n");
	printf("Hairpinning:       %s\n", r->hairpinning == 1 ? "yes" : "no");
	print_lifetime(r);
	printf("NAT type:          %s\n", nat_type_name(r->mapping, r->filtering));
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end || v < lo || v > hi)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

static int cmd_discover(const struct cli *cli, const struct settings *s)
{
	struct discover_opts o = { .lifetime_max_s = 60, .verbose = cli->verbose };
	struct discover_result r;
	const char *why;

	for (int i = 0; i < cli->argc; i++) {
		if (!strcmp(cli->argv[i], "--lifetime")) {
			o.lifetime = true;
		} else if (!strcmp(cli->argv[i], "--lifetime-max") && i + 1 < cli->argc) {
			if (parse_uint(cli->argv[++i], 1, 600, &o.lifetime_max_s) < 0) {
				usage_error("--lifetime-max takes 1 to 600 seconds, not %s",
					    cli->argv[i]);
				return EXIT_USAGE;
			}
			o.lifetime = true;
		} else {
			usage_error("discover: unexpected argument %s", cli->argv[i]);
			return EXIT_USAGE;
		}
	}
	struct settings_server srv;
	if (resolve_server(s, &srv) < 0)
		return 1;
	if (srv.tp != SETTINGS_UDP) {
		fprintf(stderr, "natclient: discover measures UDP mappings: give the server "
				"without %s:// (UDP)\n", settings_transport_str(srv.tp));
		return 1;
	}
	o.server = srv.addr;
	struct ev_loop *loop = ev_default_loop(0);
	int err = discover_run(loop, &o, &r, &why);
	if (err < 0) {
		fprintf(stderr, "natclient: discover: %s (%s). Check --server and that UDP to "
				"it is allowed.\n", why, s->server);
		return 1;
	}
	if (cli->json)
		print_discover_json(&r, s->server);
	else
		print_discover_text(&r);
	return 0;
}

/* ---- listen / connect ---- */

static int parse_hostport(const char *opt, const char *v, stun_sockaddr *out)
{
	char err[256];

	if (settings_resolve(v, 0, out, err, sizeof(err)) < 0 || !stun_sockaddr_port(out)) {
		fprintf(stderr, "natclient: %s takes HOST:PORT (e.g. 127.0.0.1:5000), not \"%s\"\n",
			opt, v);
		return -EINVAL;
	}
	return 0;
}

static int parse_relay(const char *v, enum tunnel_relay *out)
{
	if (!strcmp(v, "auto"))
		*out = TUNNEL_RELAY_AUTO;
	else if (!strcmp(v, "always"))
		*out = TUNNEL_RELAY_ALWAYS;
	else if (!strcmp(v, "never"))
		*out = TUNNEL_RELAY_NEVER;
	else
		return -EINVAL;
	return 0;
}

/* The command's own options; returns 0 or EXIT_USAGE. */
static int parse_tunnel_args(const struct cli *cli, struct tunnel_opts *o)
{
	bool listen = o->role == TUNNEL_LISTEN;

	for (int i = 1; i < cli->argc; i++) {
		const char *a = cli->argv[i], *v = i + 1 < cli->argc ? cli->argv[i + 1] : NULL;
		bool ok = v != NULL;
		if (listen && !strcmp(a, "--expose") && ok) {
			o->has_expose = true;
			ok = parse_hostport(a, cli->argv[++i], &o->expose) == 0;
		} else if (!listen && !strcmp(a, "--local") && ok) {
			o->has_local = true;
			ok = parse_hostport(a, cli->argv[++i], &o->local) == 0;
		} else if (!strcmp(a, "--relay") && ok) {
			ok = parse_relay(cli->argv[++i], &o->relay) == 0;
			if (!ok)
				usage_error("--relay takes auto, always or never, not %s", cli->argv[i]);
		} else if (!strcmp(a, "--predict") && ok) {
			char err[160];
			ok = predict_opts_parse(&o->predict, cli->argv[++i], err, sizeof(err)) == 0;
			if (!ok)
				usage_error("%s", err);
		} else if (!listen && !strcmp(a, "--timeout") && ok) {
			unsigned t = 30;
			ok = parse_uint(cli->argv[++i], 1, 86400, &t) == 0;
			o->timeout_s = t;
			if (!ok)
				usage_error("--timeout takes seconds (1-86400), not %s", cli->argv[i]);
		} else {
			usage_error(ok || a[0] != '-' ? "%s: unexpected argument" : "%s needs a value", a);
			return EXIT_USAGE;
		}
		if (!ok)
			return EXIT_USAGE;
	}
	return 0;
}

static int cmd_tunnel(const struct cli *cli, struct settings *s)
{
	struct tunnel_opts o = { .role = strcmp(cli->command, "listen") ? TUNNEL_CONNECT
									 : TUNNEL_LISTEN,
				 .timeout_s = 30, .json = cli->json, .verbose = cli->verbose };

	if (cli->argc < 1 || cli->argv[0][0] == '-') {
		usage_error("%s needs an ID: natclient ... ID [options]", cli->command);
		return EXIT_USAGE;
	}
	o.id = cli->argv[0];
	if (parse_tunnel_args(cli, &o))
		return EXIT_USAGE;
	struct settings_server srv;
	if (resolve_server(s, &srv) < 0)
		return 1;
	o.server = srv.addr;
	o.transport = srv.tp;
	o.server_host = srv.host;
	o.ca = s->ca[0] ? s->ca : NULL;
	o.insecure = s->insecure;
	if (srv.tp != SETTINGS_UDP && o.relay == TUNNEL_RELAY_NEVER) {
		usage_error("--relay never and a %s:// server exclude each other: over TCP/TLS "
			    "the relay is the only path", settings_transport_str(srv.tp));
		return EXIT_USAGE;
	}
	if ((!s->user[0] || !s->password[0]) && settings_prompt(s) < 0) {
		fprintf(stderr, "natclient: the server needs a user and password: put \"user = ...\" "
				"and \"password = ...\" in --config FILE, or set NATCLIENT_USER and "
				"NATCLIENT_PASSWORD\n");
		return 1;
	}
	o.server_name = s->server;
	o.relay_fallback_ms = s->relay_fallback_ms;
	o.consent_timeout_ms = s->consent_timeout_ms;
	o.max_sessions = s->max_sessions;
	o.user = s->user;
	o.password = s->password;
	return tunnel_run(&o);
}

int main(int argc, char **argv)
{
	struct cli cli = { 0 };
	struct settings s;

	if (parse_global(&cli, argc, argv) < 0)
		return EXIT_USAGE;
	if (load_settings(&cli, &s) < 0)
		return EXIT_USAGE;
	if (!strcmp(cli.command, "discover"))
		return cmd_discover(&cli, &s);
	if (!strcmp(cli.command, "listen") || !strcmp(cli.command, "connect"))
		return cmd_tunnel(&cli, &s);
	if (!strcmp(cli.command, "relay"))
		return relay_cmd(cli.argc, cli.argv, &s, cli.json, cli.verbose);
	usage_error("unknown command \"%s\" (commands: discover, listen, connect, relay)",
		    cli.command);
	return EXIT_USAGE;
}
