/* stund: STUN/TURN server and rendezvous point.
 *
 * main: options and configuration, then the workers; the main thread runs
 * its own loop for signals (SIGHUP reload, SIGTERM/SIGINT drain and exit)
 * and the metrics endpoint. */
#include <errno.h>
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "listener.h"
#include "listener_tls.h"
#include "log.h"
#include "turn.h"
#include "rdv_service.h"
#include "turn_dispatch.h"
#include "metrics.h"
#include "worker.h"

#define MAX_WORKERS 256

struct stund {
	struct ev_loop *loop;
	struct config_args args;
	const struct config *cfg;       /* own reference */
	struct stund_shared shared;
	struct worker *workers[MAX_WORKERS];
	int n_workers;
	struct metrics_http *http;
	struct metrics_process mp;
	ev_signal sighup, sigterm, sigint;
};

static size_t render_metrics(void *arg, char *buf, size_t cap)
{
	struct stund *s = arg;
	struct metrics *m[MAX_WORKERS];
	size_t n;

	for (int i = 0; i < s->n_workers; i++)
		m[i] = &s->workers[i]->metrics;
	n = metrics_render(buf, cap, m, s->n_workers, &s->mp);
	for (int i = 0; i < s->n_workers && n < cap; i++)
		if (s->workers[i]->turn)
			n += turn_metrics_write(s->workers[i]->turn, i, buf + n, cap - n);
	if (n < cap)
		n += tls_metrics_write(s->workers, s->n_workers, buf + n, cap - n);
	if (n < cap)
		n += rdv_service_metrics_write(s->workers, s->n_workers, buf + n, cap - n);
	return n;
}

/* SIGHUP: validate the new configuration whole; only then hand it out. */
static void reload(struct stund *s)
{
	char err[CFG_ERR_MAX];
	struct config *next;
	int r;

	r = config_load(&s->args, &next, err, sizeof(err));
	if (r) {
		s->mp.reloads_rejected++;
		log_msg(LOG_ERROR, "reload rejected: %s; the running configuration stays", err);
		return;
	}
	r = log_open(next->log_level, next->log_file);
	if (r) {
		s->mp.reloads_rejected++;
		log_msg(LOG_ERROR, "reload rejected: log-file %s: %s; the running configuration stays",
			next->log_file, strerror(-r));
		config_put(next);
		return;
	}
	r = tls_shared_reload(&s->shared, next, err, sizeof(err));
	if (r) {
		s->mp.reloads_rejected++;
		log_msg(LOG_ERROR, "reload rejected: %s; the running configuration stays", err);
		config_put(next);
		return;
	}
	if (!config_same_listeners(s->cfg, next))
		log_msg(LOG_WARN, "reload: listening addresses, ports, transports, workers and "
			"metrics-listen only change on restart; the bound sockets stay");
	for (int i = 0; i < s->n_workers; i++)
		worker_set_config(s->workers[i], next);
	config_put(s->cfg);
	s->cfg = next;
	s->mp.reloads_ok++;
	turn_dispatch_auth_warning(next);
	log_msg(LOG_INFO, "configuration reloaded from %s", s->args.conf_path ? s->args.conf_path : "the command line");
}

static void on_sighup(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	reload(w->data);
}

static void on_sigterm(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct stund *s = w->data;

	(void)revents;
	log_msg(LOG_INFO, "signal %d: draining and exiting", w->signum);
	for (int i = 0; i < s->n_workers; i++)
		worker_stop(s->workers[i]);
	ev_break(loop, EVBREAK_ALL);
}

static int worker_count(const struct config *c)
{
	long n = c->workers;

	if (!n)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	return n > MAX_WORKERS ? MAX_WORKERS : (int)n;
}

static int start_workers(struct stund *s)
{
	char err[CFG_ERR_MAX];
	sigset_t block, old;
	int r;

	s->shared.n_workers = worker_count(s->cfg);
	for (int i = 0; i < s->shared.n_workers; i++) {
		r = worker_new(&s->workers[i], i, &s->shared, s->cfg, err, sizeof(err));
		if (r) {
			log_msg(LOG_ERROR, "cannot listen: %s", err);
			return r;
		}
		s->n_workers++;
	}
	/* Signals go to the main thread: workers start with them blocked. */
	sigemptyset(&block);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	for (int i = 0; i < s->n_workers; i++) {
		r = worker_start(s->workers[i]);
		if (r)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r)
		log_msg(LOG_ERROR, "cannot start a worker: %s", strerror(-r));
	return r;
}

static void ready_line(struct stund *s)
{
	char line[2048], as[64];
	size_t n = 0;
	const struct laddr_set *ls = &s->shared.laddrs;

	for (int i = 0; i < ls->n && n < sizeof(line) - 64; i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, " %s",
				      stun_sockaddr_str(&ls->a[i].addr, as, sizeof(as)));
	line[n] = 0;
	log_notice("stund ready: %s%s%son%s; %d worker%s; RFC 5780 %s; metrics %s",
		   s->cfg->no_udp ? "" : "udp", s->cfg->no_udp || s->cfg->no_tcp ? "" : "+",
		   s->cfg->no_tcp ? " " : "tcp ", line, s->n_workers, s->n_workers == 1 ? "" : "s",
		   ls->n && ls->a[0].alt_both >= 0 ? "on" : "off",
		   s->cfg->has_metrics ? stun_sockaddr_str(&s->cfg->metrics_listen, as, sizeof(as)) : "off");
}

static int serve(struct stund *s)
{
	char err[CFG_ERR_MAX];
	int r;

	s->loop = ev_default_loop(EVFLAG_AUTO);
	s->mp.start_time = (double)time(NULL);
	laddr_set_build(&s->shared.laddrs, s->cfg);
	turn_dispatch_auth_warning(s->cfg);
	r = turn_dispatch_setup(&s->shared, s->cfg, err, sizeof(err));
	if (r) {
		log_msg(LOG_ERROR, "cannot set up the TURN relay: %s", err);
		return r;
	}
	r = rdv_service_setup(&s->shared, s->cfg, err, sizeof(err));
	if (r) {
		log_msg(LOG_ERROR, "cannot set up the rendezvous: %s", err);
		return r;
	}
	r = tls_shared_setup(&s->shared, s->cfg, err, sizeof(err));
	if (r) {
		log_msg(LOG_ERROR, "cannot set up TLS: %s", err);
		return r;
	}
	r = start_workers(s);
	if (r)
		return r;
	s->mp.workers = s->n_workers;
	if (s->cfg->has_metrics) {
		r = metrics_http_start(&s->http, s->loop, &s->cfg->metrics_listen, render_metrics, s,
				       err, sizeof(err));
		if (r) {
			log_msg(LOG_ERROR, "cannot listen: %s", err);
			return r;
		}
	}
	ev_signal_init(&s->sighup, on_sighup, SIGHUP);
	ev_signal_init(&s->sigterm, on_sigterm, SIGTERM);
	ev_signal_init(&s->sigint, on_sigterm, SIGINT);
	s->sighup.data = s->sigterm.data = s->sigint.data = s;
	ev_signal_start(s->loop, &s->sighup);
	ev_signal_start(s->loop, &s->sigterm);
	ev_signal_start(s->loop, &s->sigint);
	ready_line(s);
	ev_run(s->loop, 0);
	return 0;
}

static void shutdown_all(struct stund *s)
{
	for (int i = 0; i < s->n_workers; i++)
		worker_stop(s->workers[i]);
	for (int i = 0; i < s->n_workers; i++)
		worker_join(s->workers[i]);
	for (int i = 0; i < s->n_workers; i++)
		worker_free(s->workers[i]);
	turn_dispatch_teardown(&s->shared);
	rdv_service_teardown(&s->shared);
	tls_shared_teardown(&s->shared);
	metrics_http_stop(s->http);
	if (s->loop) {
		ev_signal_stop(s->loop, &s->sighup);
		ev_signal_stop(s->loop, &s->sigterm);
		ev_signal_stop(s->loop, &s->sigint);
	}
	config_put(s->cfg);
	config_args_free(&s->args);
}

static int early_exit(struct stund *s, int code)
{
	config_args_free(&s->args);
	return code;
}

int main(int argc, char **argv)
{
	static struct stund s;
	char err[CFG_ERR_MAX], desc[1024];
	struct config *cfg;
	int r;

	signal(SIGPIPE, SIG_IGN);
	if (config_args_parse(&s.args, argc, argv, err, sizeof(err))) {
		fprintf(stderr, "stund: %s\n", err);
		return early_exit(&s, 2);
	}
	if (s.args.help || s.args.version) {
		if (s.args.help)
			config_print_help(stdout);
		else
			printf("stund %s\n", NATKIT_VERSION);
		return early_exit(&s, 0);
	}
	if (config_load(&s.args, &cfg, err, sizeof(err))) {
		fprintf(stderr, "stund: configuration error: %s\n", err);
		return early_exit(&s, 1);
	}
	s.cfg = cfg;
	config_describe(cfg, desc, sizeof(desc));
	if (s.args.check_config && tls_config_check(cfg, err, sizeof(err))) {
		fprintf(stderr, "stund: configuration error: %s\n", err);
		config_put(cfg);
		return early_exit(&s, 1);
	}
	if (s.args.check_config) {
		printf("stund: configuration OK: %s: %s\n",
		       s.args.conf_path ? s.args.conf_path : "(no file)", desc);
		config_put(cfg);
		return early_exit(&s, 0);
	}
	r = log_open(cfg->log_level, cfg->log_file);
	if (r) {
		fprintf(stderr, "stund: log-file %s: %s\n", cfg->log_file, strerror(-r));
		config_put(cfg);
		return early_exit(&s, 1);
	}
	log_msg(LOG_INFO, "stund %s starting: %s", NATKIT_VERSION, desc);
	r = serve(&s);
	shutdown_all(&s);
	log_msg(LOG_INFO, "stund stopped");
	log_close();
	return r ? 1 : 0;
}
