/* relay_cmd: `natclient relay PEER [--channel] [--lifetime S]` (see relay_cmd.h). */
#include "relay_cmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ev.h>

#include "stun_client.h"
#include "stun_stream.h"
#include "turn_client.h"

struct relay_run {
	struct ev_loop *loop;
	struct stun_client *sc;
	struct turn_client *tc;
	struct stun_cred cred;
	stun_sockaddr server, peer;
	struct settings_server srv;   /* tcp:// or tls://: over one connection */
	const struct settings *s;
	bool json, channel;
	double refresh;
	int verbose;
	int exit_code;
	ev_io in;
	ev_signal sigint, sigterm;
	char line[65536];
	size_t line_len;
	const char *server_name;
};

static void json_string(const uint8_t *p, size_t n)
{
	putchar('"');
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '"' || p[i] == '\\')
			printf("\\%c", p[i]);
		else if (p[i] < 0x20 || p[i] >= 0x7f)
			printf("\\u%04x", p[i]);
		else
			putchar(p[i]);
	}
	putchar('"');
}

static void stop(struct relay_run *rr, int code)
{
	rr->exit_code = code;
	ev_break(rr->loop, EVBREAK_ALL);
}

static void fail(struct relay_run *rr, const char *what, int status)
{
	if (status == -EACCES)
		fprintf(stderr, "natclient: relay: %s: the server rejected user \"%s\" (401): "
				"check user and password (--config FILE, NATCLIENT_USER, "
				"NATCLIENT_PASSWORD)\n", what, rr->cred.user);
	else
		fprintf(stderr, "natclient: relay: %s: %s (%s)\n", what,
			turn_client_strerror(status), rr->server_name);
	stop(rr, 1);
}

static void on_data(struct turn_client *t, const stun_sockaddr *peer, const uint8_t *data,
		    size_t len, bool via_channel, void *arg)
{
	struct relay_run *rr = arg;
	char buf[64];

	(void)t;
	if (!rr->json) {
		fwrite(data, 1, len, stdout);
		if (!len || data[len - 1] != '\n')
			putchar('\n');
		fflush(stdout);
		return;
	}
	printf("{\"event\":\"data\",\"from\":\"%s\",\"via\":\"%s\",\"len\":%zu,\"data\":",
	       stun_sockaddr_str(peer, buf, sizeof(buf)), via_channel ? "channel" : "indication",
	       len);
	json_string(data, len);
	printf("}\n");
	fflush(stdout);
}

static void send_line(struct relay_run *rr, const char *p, size_t n)
{
	bool ch = turn_client_channel(rr->tc, &rr->peer) != 0;
	int err = turn_client_send(rr->tc, &rr->peer, p, n);

	if (err < 0) {
		fprintf(stderr, "natclient: relay: send: %s\n", strerror(-err));
		return;
	}
	if (rr->json) {
		printf("{\"event\":\"sent\",\"via\":\"%s\",\"len\":%zu}\n",
		       ch ? "channel" : "indication", n);
		fflush(stdout);
	}
}

static void stdin_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct relay_run *rr = w->data;
	ssize_t n;

	(void)loop;
	(void)revents;
	n = read(0, rr->line + rr->line_len, sizeof(rr->line) - rr->line_len);
	if (n <= 0) { /* EOF: done */
		stop(rr, 0);
		return;
	}
	rr->line_len += (size_t)n;
	char *start = rr->line, *nl;
	while ((nl = memchr(start, '\n', rr->line_len - (size_t)(start - rr->line)))) {
		send_line(rr, start, (size_t)(nl - start));
		start = nl + 1;
	}
	rr->line_len -= (size_t)(start - rr->line);
	memmove(rr->line, start, rr->line_len);
	if (rr->line_len == sizeof(rr->line)) { /* a line longer than a datagram */
		send_line(rr, rr->line, rr->line_len);
		rr->line_len = 0;
	}
}

static void peer_ready(struct turn_client *t, int status, void *arg)
{
	struct relay_run *rr = arg;
	char buf[64];

	if (status) {
		fail(rr, rr->channel ? "ChannelBind" : "CreatePermission", status);
		return;
	}
	if (rr->json) {
		printf("{\"event\":\"%s\",\"peer\":\"%s\",\"channel\":%u}\n",
		       rr->channel ? "channel" : "permission",
		       stun_sockaddr_str(&rr->peer, buf, sizeof(buf)),
		       turn_client_channel(t, &rr->peer));
		fflush(stdout);
	} else if (rr->verbose) {
		fprintf(stderr, "natclient: relay: %s for %s\n",
			rr->channel ? "channel bound" : "permission installed",
			stun_sockaddr_str(&rr->peer, buf, sizeof(buf)));
	}
	ev_io_start(rr->loop, &rr->in);
}

static void allocated(struct turn_client *t, int status, void *arg)
{
	struct relay_run *rr = arg;
	char rel[64], map[64];
	int err;

	if (status) {
		fail(rr, "Allocate", status);
		return;
	}
	stun_sockaddr_str(turn_client_relayed(t), rel, sizeof(rel));
	stun_sockaddr_str(turn_client_mapped(t), map, sizeof(map));
	if (rr->json)
		printf("{\"event\":\"allocated\",\"relayed\":\"%s\",\"mapped\":\"%s\","
		       "\"lifetime\":%u}\n", rel, map, turn_client_lifetime(t));
	else
		printf("relayed %s (mapped %s, lifetime %u s)\n", rel, map,
		       turn_client_lifetime(t));
	fflush(stdout);
	err = rr->channel ? turn_client_bind_channel(t, &rr->peer, peer_ready, rr)
			  : turn_client_permit(t, &rr->peer, peer_ready, rr);
	if (err < 0)
		fail(rr, "permission", err);
}

static void lost(struct turn_client *t, int status, void *arg)
{
	(void)t;
	fail(arg, "allocation lost", status);
}

static void other_cb(struct stun_client *c, const uint8_t *buf, size_t len,
		     const stun_sockaddr *from, const struct stun_msg *m, void *arg)
{
	struct relay_run *rr = arg;

	(void)c;
	turn_client_input(rr->tc, buf, len, from, m);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	stop(w->data, 0);
}

static int parse_args(struct relay_run *rr, int argc, char **argv, uint32_t *lifetime)
{
	char err[256];
	const char *peer = NULL;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--channel")) {
			rr->channel = true;
		} else if (!strcmp(argv[i], "--refresh") && i + 1 < argc) {
			rr->refresh = strtod(argv[++i], NULL);
		} else if (!strcmp(argv[i], "--lifetime") && i + 1 < argc) {
			*lifetime = (uint32_t)strtoul(argv[++i], NULL, 10);
		} else if (argv[i][0] != '-' && !peer) {
			peer = argv[i];
		} else {
			fprintf(stderr, "natclient: relay: unexpected argument %s\n"
				"Try 'natclient --help'.\n", argv[i]);
			return -EINVAL;
		}
	}
	if (!peer) {
		fprintf(stderr, "natclient: relay needs a peer: natclient relay HOST:PORT\n");
		return -EINVAL;
	}
	if (settings_resolve(peer, 0, &rr->peer, err, sizeof(err)) < 0 ||
	    !stun_sockaddr_port(&rr->peer)) {
		fprintf(stderr, "natclient: relay: peer: %s\n",
			stun_sockaddr_port(&rr->peer) ? err : "give the peer as HOST:PORT");
		return -EINVAL;
	}
	return 0;
}

static int need_credentials(struct relay_run *rr, struct settings *s)
{
	char err[256];

	if (!s->server[0]) {
		fprintf(stderr, "natclient: no server given: use --server HOST[:PORT], a "
				"\"server = HOST\" line in --config FILE, or NATCLIENT_SERVER\n");
		return -EINVAL;
	}
	if (settings_server_parse(s->server, &rr->srv, err, sizeof(err)) < 0) {
		fprintf(stderr, "natclient: server: %s\n", err);
		return -EINVAL;
	}
	rr->server = rr->srv.addr;
	rr->s = s;
	if ((!s->user[0] || !s->password[0]) && settings_prompt(s) < 0) {
		fprintf(stderr, "natclient: the TURN server needs a user and password: put "
				"\"user = ...\" and \"password = ...\" in --config FILE, or set "
				"NATCLIENT_USER and NATCLIENT_PASSWORD\n");
		return -EINVAL;
	}
	stun_cred_init(&rr->cred, s->user, s->password);
	rr->server_name = s->server;
	return 0;
}

/* tcp://, tls://: the connection carries the allocation; it ends with it */
static void stream_closed(struct stun_client *c, int err, const char *why, void *arg)
{
	(void)c;
	(void)err;
	fprintf(stderr, "natclient: relay: the connection to the server %s: %s\n",
		((struct relay_run *)arg)->server_name, why);
	stop(arg, 1);
}

static int open_stream(struct relay_run *rr)
{
	struct stun_stream_opts so = { .tls = rr->srv.tp == SETTINGS_TLS, .host = rr->srv.host,
				       .ca_file = rr->s->ca[0] ? rr->s->ca : NULL,
				       .insecure = rr->s->insecure };
	char err[512];
	int rc = stun_client_open_stream(rr->loop, &rr->server, &so, &rr->sc, err, sizeof(err));

	if (rc < 0) {
		fprintf(stderr, "natclient: relay: %s\n", err);
		return rc;
	}
	stun_client_set_closed(rr->sc, stream_closed, rr);
	return 0;
}

static int run(struct relay_run *rr, uint32_t lifetime)
{
	stun_sockaddr any = { 0 };
	struct turn_client_cbs cbs = { .allocated = allocated, .data = on_data, .lost = lost,
				       .arg = rr };
	int err;

	any.sa.sa_family = rr->server.sa.sa_family;
	err = rr->srv.tp == SETTINGS_UDP ? stun_client_open(rr->loop, &any, &rr->sc)
					  : open_stream(rr);
	if (err < 0)
		return err;
	stun_client_set_verbose(rr->sc, rr->verbose);
	stun_client_set_other(rr->sc, other_cb, rr);
	err = turn_client_new(rr->sc, &rr->server, &rr->cred, &cbs, &rr->tc);
	if (err < 0)
		return err;
	turn_client_set_refresh(rr->tc, rr->refresh);
	err = turn_client_allocate(rr->tc, lifetime);
	if (err < 0)
		return err;
	ev_run(rr->loop, 0);
	return 0;
}

int relay_cmd(int argc, char **argv, struct settings *s, bool json, int verbose)
{
	struct relay_run *rr = calloc(1, sizeof(*rr));
	uint32_t lifetime = 0;
	int code = 2, err;

	if (!rr)
		return 1;
	rr->json = json;
	rr->verbose = verbose;
	if (parse_args(rr, argc, argv, &lifetime) < 0)
		goto out;
	code = 1;
	if (need_credentials(rr, s) < 0)
		goto out;
	rr->loop = ev_default_loop(0);
	ev_io_init(&rr->in, stdin_cb, 0, EV_READ);
	rr->in.data = rr;
	ev_signal_init(&rr->sigint, signal_cb, SIGINT);
	ev_signal_init(&rr->sigterm, signal_cb, SIGTERM);
	rr->sigint.data = rr->sigterm.data = rr;
	ev_signal_start(rr->loop, &rr->sigint);
	ev_signal_start(rr->loop, &rr->sigterm);
	err = run(rr, lifetime);
	if (err < 0)
		fprintf(stderr, "natclient: relay: %s\n", strerror(-err));
	code = err < 0 ? 1 : rr->exit_code;
	ev_io_stop(rr->loop, &rr->in);
	ev_signal_stop(rr->loop, &rr->sigint);
	ev_signal_stop(rr->loop, &rr->sigterm);
	turn_client_free(rr->tc);
	stun_client_free(rr->sc);
out:
	free(rr);
	return code;
}
