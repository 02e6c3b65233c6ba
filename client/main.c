/* natclient: NAT discovery and peer-to-peer connections.
 *
 *   natclient [--server HOST[:PORT]] [--config FILE] [--json] [-v] COMMAND
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

#define EXIT_USAGE 2
#define EXIT_NOT_IMPLEMENTED 2

struct cli {
	const char *server;
	const char *config;
	bool json;
	int verbose;
	const char *command;
	int argc;          /* the command's own arguments */
	char **argv;
};

static const char usage_text[] =
	"usage: natclient [--server HOST[:PORT]] [--config FILE] [--json] [-v] COMMAND [ARGS]\n"
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
	"  listen ID [--expose HOST:PORT]\n"
	"      Register ID at the server and accept a connection to it. Data goes to\n"
	"      stdout and comes from stdin, or with --expose to and from a local UDP\n"
	"      service.\n"
	"  connect ID [--local HOST:PORT] [--relay auto|always|never] [--timeout SECONDS]\n"
	"      Connect to the peer registered as ID: direct if a path opens, else\n"
	"      through a TURN relay (--relay). --local binds a local UDP port whose\n"
	"      datagrams go to the peer. Gives up after --timeout (default 30 s).\n"
	"  relay PEER_HOST:PORT [--channel] [--lifetime SECONDS] [--refresh SECONDS]\n"
	"      Diagnostic: allocate a TURN relay on the server, permit PEER, and\n"
	"      exchange data with it through the relay: each stdin line is sent to\n"
	"      PEER, each datagram from PEER is printed. --channel binds a channel\n"
	"      (ChannelData) instead of Send/Data indications. --refresh refreshes\n"
	"      the allocation and permissions every SECONDS (default: before expiry).\n"
	"\n"
	"Options:\n"
	"  --server HOST[:PORT]  the STUN/TURN server (default port 3478)\n"
	"  --config FILE         read \"key = value\" lines: server, user, password\n"
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
		} else if (!strcmp(a, "--server") || !strcmp(a, "--config")) {
			if (i + 1 >= argc) {
				usage_error("%s needs a value", a);
				return -EINVAL;
			}
			*(!strcmp(a, "--server") ? &cli->server : &cli->config) = argv[++i];
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
	if (cli->config && settings_load_file(s, cli->config, err, sizeof(err)) < 0) {
		fprintf(stderr, "natclient: %s\n", err);
		return -EINVAL;
	}
	settings_load_env(s);
	return 0;
}

static int resolve_server(const struct settings *s, stun_sockaddr *out)
{
	char err[512];

	if (!s->server[0]) {
		fprintf(stderr, "natclient: no server given: use --server HOST[:PORT], a "
				"\"server = HOST\" line in --config FILE, or NATCLIENT_SERVER\n");
		return -EINVAL;
	}
	if (settings_resolve(s->server, NATCLIENT_DEFAULT_PORT, out, err, sizeof(err)) < 0) {
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
	if (resolve_server(s, &o.server) < 0)
		return 1;
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

/* ---- listen / connect: the ICE agent is not there yet ---- */

static int cmd_not_yet(const struct cli *cli)
{
	if (cli->argc < 1 || cli->argv[0][0] == '-') {
		usage_error("%s needs an ID: natclient %s ID ...", cli->command);
		return EXIT_USAGE;
	}
	fprintf(stderr, "natclient: %s: not implemented yet\n", cli->command);
	return EXIT_NOT_IMPLEMENTED;
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
		return cmd_not_yet(&cli);
	if (!strcmp(cli.command, "relay"))
		return relay_cmd(cli.argc, cli.argv, &s, cli.json, cli.verbose);
	usage_error("unknown command \"%s\" (commands: discover, listen, connect, relay)",
		    cli.command);
	return EXIT_USAGE;
}
