/* turn: the per-process and per-worker TURN state, and its metrics. */
#include "turn.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "config.h"
#include "metrics.h"
#include "peer_filter.h"
#include "seeded_hash.h"
#include "turn_internal.h"

#define TURN_CAPACITY_DEFAULT 32768 /* allocations per worker without total-quota */
#define TURN_TXCACHE_ENTRIES 1024
#define TURN_RESERVATIONS 1024

static bool addr_is_any(const stun_sockaddr *a)
{
	static const struct in6_addr any6 = IN6ADDR_ANY_INIT;

	if (a->sa.sa_family == AF_INET)
		return a->in4.sin_addr.s_addr == htonl(INADDR_ANY);
	return !memcmp(&a->in6.sin6_addr, &any6, sizeof(any6));
}

/* relay-ip, else the specific listening addresses, else 127.0.0.1. */
static size_t relay_ips(const struct config *cfg, stun_sockaddr *out, size_t cap)
{
	size_t n = 0;

	for (int i = 0; i < cfg->n_relay_ip && n < cap; i++)
		out[n++] = cfg->relay_ip[i];
	for (int i = 0; !cfg->n_relay_ip && i < cfg->n_listen_ip && n < cap; i++)
		if (!addr_is_any(&cfg->listen_ip[i]))
			out[n++] = cfg->listen_ip[i];
	if (n)
		return n;
	memset(&out[0], 0, sizeof(out[0]));
	out[0].in4.sin_family = AF_INET;
	out[0].in4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return 1;
}

int turn_shared_new(const struct config *cfg, struct turn_shared **out, char *err,
		    size_t errlen)
{
	stun_sockaddr ips[CFG_MAX_RELAY + CFG_MAX_LISTEN];
	size_t n = relay_ips(cfg, ips, sizeof(ips) / sizeof(ips[0]));
	struct turn_shared *sh = calloc(1, sizeof(*sh));
	uint32_t users;

	if (!sh)
		return -ENOMEM;
	sh->capacity = cfg->total_quota ? cfg->total_quota : TURN_CAPACITY_DEFAULT;
	sh->max_lifetime = cfg->max_allocate_lifetime ? cfg->max_allocate_lifetime
						     : TURN_MAX_LIFETIME_DEFAULT;
	sh->max_bps = cfg->max_bps;
	sh->has_external = cfg->has_external_ip;
	sh->external = cfg->external_ip;
	sh->has_external_private = cfg->has_external_private;
	sh->external_private = cfg->external_private;
	sh->software = cfg->no_software_attribute ? NULL : "stund " NATKIT_VERSION;
	sh->ports = relay_ports_new(ips, n, cfg->min_port, cfg->max_port, TURN_RESERVATIONS, 0);
	users = sh->capacity * 4 < 1024 * 1024 ? sh->capacity * 4 : 1024 * 1024;
	sh->quota = turn_quota_new(cfg->total_quota, cfg->user_quota, users);
	if (!sh->ports || !sh->quota) {
		snprintf(err, errlen, "turn: cannot set up relay ports %u-%u",
			 cfg->min_port, cfg->max_port);
		turn_shared_free(sh);
		return -ENOMEM;
	}
	*out = sh;
	return 0;
}

void turn_shared_free(struct turn_shared *sh)
{
	if (!sh)
		return;
	relay_ports_free(sh->ports);
	turn_quota_free(sh->quota);
	free(sh);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct turn_service *ts = w->data;
	int n;

	(void)revents;
	n = turn_table_expire(ts->table, ev_now(loop));
	turn_count(&ts->ctr.allocs_expired, (uint64_t)n);
	relay_ports_expire(ts->sh->ports, ev_now(loop));
	ts->timer_at = INFINITY;
	turn_timer_update(ts);
}

void turn_timer_update(struct turn_service *ts)
{
	double next = turn_table_next_event(ts->table);

	if (next >= ts->timer_at)
		return;
	ev_timer_stop(ts->loop, &ts->timer);
	ts->timer_at = next;
	if (isinf(next))
		return;
	ev_timer_set(&ts->timer, fmax(next - ev_now(ts->loop), 0) + 0.001, 0.);
	ev_timer_start(ts->loop, &ts->timer);
}

static void rx_init(struct turn_service *ts)
{
	for (int i = 0; i < TURN_BATCH; i++) {
		ts->rx_iov[i].iov_base = turn_rx_data(&ts->rx[i]);
		ts->rx_iov[i].iov_len = TURN_BUF_DATA;
		ts->rx_msg[i].msg_hdr.msg_iov = &ts->rx_iov[i];
		ts->rx_msg[i].msg_hdr.msg_iovlen = 1;
		ts->rx_msg[i].msg_hdr.msg_name = &ts->rx_from[i];
	}
}

struct turn_service *turn_service_new(struct ev_loop *loop, struct turn_shared *sh,
				      const struct config *cfg)
{
	struct turn_service *ts = calloc(1, sizeof(*ts));
	struct turn_table_cfg tc = {
		.capacity = sh->capacity,
		.default_lifetime = TURN_DEFAULT_LIFETIME,
		.max_lifetime = sh->max_lifetime,
		.perms = sh->capacity * 4, .chans = sh->capacity * 4,
		.max_per_alloc = TURN_PER_ALLOC,
		.ext_size = sizeof(struct turn_relay),
		.release = turn_relay_release,
	};

	if (!ts)
		return NULL;
	tc.release_arg = ts;
	ts->loop = loop;
	ts->sh = sh;
	ts->rfc5766_channels = cfg->rfc5766_channels;
	ts->rcvbuf = cfg->udp_recv_buffer;
	ts->sndbuf = cfg->udp_send_buffer;
	ts->max_bps = cfg->max_bps;
	ts->table = turn_table_new(&tc, sh->quota);
	ts->tx = txcache_new(TURN_TXCACHE_ENTRIES);
	ts->rx = calloc(TURN_BATCH, sizeof(*ts->rx));
	ts->auth_ctr = calloc(1, sizeof(*ts->auth_ctr));
	ts->peer_ctr = calloc(1, sizeof(struct peer_counters));
	if (!ts->table || !ts->tx || !ts->rx || !ts->auth_ctr || !ts->peer_ctr) {
		turn_service_free(ts);
		return NULL;
	}
	if (cfg->rfc5766_channels)
		turn_perm_pool_set_chan_max(turn_table_perms(ts->table), TURN_CHANNEL_MAX_RFC5766);
	rx_init(ts);
	ts->tid_seq[0] = seeded_hash_seed();
	ts->next_conn_id = (uint32_t)seeded_hash_seed();
	ev_timer_init(&ts->timer, timer_cb, 0., 0.);
	ts->timer.data = ts;
	ts->timer_at = INFINITY;
	return ts;
}

void turn_service_free(struct turn_service *ts)
{
	if (!ts)
		return;
	if (ts->loop)
		ev_timer_stop(ts->loop, &ts->timer);
	turn_table_free(ts->table);
	txcache_free(ts->tx);
	free(ts->rx);
	free(ts->auth_ctr);
	free(ts->peer_ctr);
	free(ts);
}

void turn_service_set_auth(struct turn_service *ts, const struct auth_ctx *auth,
			   bool no_auth)
{
	ts->auth = auth;
	ts->no_auth = no_auth;
}

void turn_service_reload(struct turn_service *ts, const struct config *cfg)
{
	ts->rcvbuf = cfg->udp_recv_buffer;
	ts->sndbuf = cfg->udp_send_buffer;
	ts->max_bps = cfg->max_bps;
	turn_table_set_max_lifetime(ts->table, cfg->max_allocate_lifetime
						       ? cfg->max_allocate_lifetime
						       : TURN_MAX_LIFETIME_DEFAULT);
	/* the pools stay as sized at start: beyond them, 508 */
	turn_quota_set_limits(ts->sh->quota, cfg->total_quota, cfg->user_quota);
}

void turn_service_set_filter(struct turn_service *ts, const struct peer_filter *f)
{
	ts->filter = f;
}

/* ---- metrics ------------------------------------------------------------ */

static const char *const refusal_name[TR_COUNT] = {
	[TR_BAD_REQUEST] = "400_bad_request", [TR_UNAUTHORIZED] = "401_unauthorized",
	[TR_FORBIDDEN] = "403_forbidden", [TR_MISMATCH] = "437_allocation_mismatch",
	[TR_STALE_NONCE] = "438_stale_nonce", [TR_FAMILY] = "440_address_family",
	[TR_WRONG_CREDENTIALS] = "441_wrong_credentials",
	[TR_TRANSPORT] = "442_unsupported_transport",
	[TR_PEER_FAMILY] = "443_peer_address_family", [TR_QUOTA] = "486_allocation_quota",
	[TR_CAPACITY] = "508_insufficient_capacity", [TR_SERVER_ERROR] = "500_server_error",
};

static const char *const drop_name[TD_COUNT] = {
	[TD_NO_ALLOCATION] = "no_allocation", [TD_NO_PERMISSION] = "no_permission",
	[TD_NO_CHANNEL] = "no_channel", [TD_FILTERED] = "peer_filtered",
	[TD_MALFORMED] = "malformed", [TD_BANDWIDTH] = "max_bps",
	[TD_SEND_ERROR] = "send_error", [TD_TOO_BIG] = "too_big",
};

static const char *const limit_name[TL_COUNT] = {
	[TL_PERMS_PER_ALLOC] = "permissions_per_allocation",
	[TL_CHANS_PER_ALLOC] = "channels_per_allocation",
	[TL_TCP_CONNS_PER_ALLOC] = "tcp_connections_per_allocation",
	[TL_TCP_PENDING_PER_ALLOC] = "tcp_pending_per_allocation",
};

static uint64_t rd(_Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

#define PUT(...) (n = metrics_appendf(buf, cap, n, __VA_ARGS__))

size_t turn_metrics_write(struct turn_service *ts, int worker, char *buf, size_t cap)
{
	struct turn_counters *c = &ts->ctr;
	struct turn_perm_pool *pp = turn_table_perms(ts->table);
	size_t n = 0;

	PUT("stund_turn_allocations{worker=\"%d\"} %u\n", worker, turn_table_count(ts->table));
	PUT("stund_turn_permissions{worker=\"%d\"} %u\n", worker, turn_perm_pool_perms(pp));
	PUT("stund_turn_channels{worker=\"%d\"} %u\n", worker, turn_perm_pool_chans(pp));
	PUT("stund_turn_allocations_created_total{worker=\"%d\"} %lu\n", worker,
	    (unsigned long)rd(&c->allocs_created));
	PUT("stund_turn_allocations_expired_total{worker=\"%d\"} %lu\n", worker,
	    (unsigned long)rd(&c->allocs_expired));
	PUT("stund_turn_allocations_deleted_total{worker=\"%d\"} %lu\n", worker,
	    (unsigned long)rd(&c->allocs_deleted));
	PUT("stund_turn_relayed_packets_total{worker=\"%d\",direction=\"to_peer\"} %lu\n",
	    worker, (unsigned long)rd(&c->pkts_to_peer));
	PUT("stund_turn_relayed_packets_total{worker=\"%d\",direction=\"to_client\"} %lu\n",
	    worker, (unsigned long)rd(&c->pkts_to_client));
	PUT("stund_turn_relayed_bytes_total{worker=\"%d\",direction=\"to_peer\"} %lu\n",
	    worker, (unsigned long)rd(&c->bytes_to_peer));
	PUT("stund_turn_relayed_bytes_total{worker=\"%d\",direction=\"to_client\"} %lu\n",
	    worker, (unsigned long)rd(&c->bytes_to_client));
	PUT("stund_turn_icmp_total{worker=\"%d\"} %lu\n", worker,
	    (unsigned long)rd(&c->icmp_to_client));
	for (int i = 0; i < TR_COUNT; i++)
		PUT("stund_turn_refusals_total{worker=\"%d\",reason=\"%s\"} %lu\n", worker,
		    refusal_name[i], (unsigned long)rd(&c->refused[i]));
	for (int i = 0; i < TD_COUNT; i++)
		PUT("stund_turn_drops_total{worker=\"%d\",reason=\"%s\"} %lu\n", worker,
		    drop_name[i], (unsigned long)rd(&c->dropped[i]));
	for (int i = 0; i < TL_COUNT; i++)
		PUT("stund_turn_limit_refusals_total{worker=\"%d\",limit=\"%s\"} %lu\n", worker,
		    limit_name[i], (unsigned long)rd(&c->limited[i]));
	for (int i = 1; i < PEER_REASON_COUNT; i++)
		PUT("stund_turn_peer_refusals_total{worker=\"%d\",reason=\"%s\"} %lu\n", worker,
		    peer_reason_name(i),
		    (unsigned long)rd(&((struct peer_counters *)ts->peer_ctr)->by_reason[i]));
	return n < cap ? n : cap;
}
