/* config: stund's configuration, coturn turnserver.conf format.
 *
 * A struct config is built once by config_load() (file, then command-line
 * overrides, then validation) and is read-only afterwards: it is passed
 * down as `const struct config *` and replaced whole on reload. Workers
 * hold a reference (config_get/config_put) so the old one lives until the
 * last worker has switched to the new one. */
#ifndef STUND_CONFIG_H
#define STUND_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "peer_filter.h"
#include "stun_msg.h"

#define CFG_MAX_LISTEN 8
#define CFG_MAX_RELAY 8
#define CFG_ERR_MAX 512
#define RDV_DEFAULT_MAX_IDS 10000   /* rendezvous-max-ids */
#define RDV_DEFAULT_USER_QUOTA 16   /* rendezvous-user-quota */
#define CFG_DEFAULT_USER_QUOTA 50   /* user-quota: allocations per user */
#define CFG_FD_RESERVE 1024         /* fds kept for listeners and streams when
				     * total-quota is derived from RLIMIT_NOFILE */
#define CFG_DEFAULT_UDP_BUFFER (4u * 1024 * 1024) /* udp-recv/send-buffer */

#define CFG_DEFAULT_PORT 3478
#define CFG_DEFAULT_TLS_PORT 5349

struct cfg_user {
	char *name;
	char *password; /* never logged */
};

struct config {
	/* Listening (changes need a restart; reload keeps the bound sockets). */
	stun_sockaddr listen_ip[CFG_MAX_LISTEN]; /* ports 0; wildcard if none given */
	int n_listen_ip;
	uint16_t listening_port;
	uint16_t alt_listening_port;  /* RFC 5780 second port */
	uint16_t tls_listening_port;  /* TLS (TCP) and DTLS (UDP) */
	bool no_udp, no_tcp, no_tls, no_dtls;
	int workers;                  /* 0 = auto: one per online CPU */

	/* TURN relay. */
	stun_sockaddr relay_ip[CFG_MAX_RELAY];
	int n_relay_ip;
	bool has_external_ip;
	stun_sockaddr external_ip;    /* public address announced */
	bool has_external_private;
	stun_sockaddr external_private; /* "external-ip = public/private" */
	uint16_t min_port, max_port;
	uint32_t user_quota, total_quota; /* allocations; 0 = unlimited (only
					   * when set so: the defaults are bounded) */
	uint32_t rdv_max_ids, rdv_user_quota; /* rendezvous registry bounds */
	uint32_t max_allocate_lifetime;   /* seconds, RFC 8656 s7.2 */
	uint64_t max_bps;                 /* per allocation; 0 = unlimited */
	bool allow_loopback_peers;
	bool rfc5766_channels;            /* also accept channels 0x5000-0x7FFF */
	struct peer_range *denied_peer; size_t n_denied_peer;
	struct peer_range *allowed_peer; size_t n_allowed_peer;

	/* Authentication. */
	char *realm;
	struct cfg_user *users; size_t n_users; /* `user` lines, then userdb */
	char *userdb;
	char **secrets; size_t n_secrets;        /* static-auth-secret, never logged */
	char *cert, *pkey;
	bool no_auth;     /* coturn's no-auth: TURN and rendezvous without
			   * credentials (an open relay); else, with no
			   * user/userdb/static-auth-secret, they are refused */

	/* Services. */
	bool rendezvous;

	/* Socket buffers (SO_RCVBUF / SO_SNDBUF) of the UDP listening and
	 * relayed sockets, bytes; 0 = the kernel's default. */
	uint32_t udp_recv_buffer, udp_send_buffer;

	/* Streams. */
	uint32_t max_connections;   /* concurrent TCP/TLS connections, whole process */
	uint32_t idle_timeout;      /* seconds without a frame before a stream is closed */

	/* Amplification guards (unauthenticated requests). */
	uint32_t rate_limit;          /* requests/s per source IP per worker; 0 = off */
	uint32_t rate_limit_redirect; /* CHANGE-REQUEST/RESPONSE-PORT/PADDING per source IP/s */
	uint16_t max_padding;         /* PADDING bytes accepted and sent back */
	bool no_software_attribute;

	/* Operations. */
	char *log_file;       /* NULL = stderr */
	int log_level;        /* enum log_level */
	bool has_metrics;
	stun_sockaddr metrics_listen;

	/* Where it came from (for reload and messages). */
	char *path;

	int refs; /* internal */
};

/* Parse argv-style options (argv[0] is skipped). Recognises -c FILE,
 * --check-config, --help, --version and every config key as --key value,
 * --key=value or --flag. Values given here override the file. */
struct config_args {
	const char *conf_path;
	bool check_config, help, version;
	int n;              /* overrides */
	const char **keys;  /* borrowed from argv or allocated; see free */
	const char **vals;  /* NULL for a bare flag */
};
int config_args_parse(struct config_args *a, int argc, char **argv, char *err, size_t errlen);
void config_args_free(struct config_args *a);

/* Load a configuration: defaults, then the file (if conf_path), then the
 * overrides, then validation. On error returns a negative errno code and a
 * message naming file:line, the key and what is accepted. */
int config_load(const struct config_args *a, struct config **out, char *err, size_t errlen);

/* Parse a configuration from a string (unit tests); name is used in messages. */
int config_load_string(const char *name, const char *text, const struct config_args *a,
		       struct config **out, char *err, size_t errlen);

const struct config *config_get(const struct config *c);
/* Drops a reference; the last one frees. */
void config_put(const struct config *c);

/* Do two configs bind the same sockets? (reload cannot rebind) */
bool config_same_listeners(const struct config *a, const struct config *b);

/* Ports of the effective listening addresses. */
static inline bool config_rfc5780_port_pair(const struct config *c)
{
	return c->alt_listening_port != c->listening_port;
}

/* Are TURN and rendezvous requests authenticated (any user, userdb or
 * static-auth-secret)? */
static inline bool config_has_credentials(const struct config *c)
{
	return c->n_users || c->n_secrets;
}

/* Summary for --check-config and the startup log (never secrets). */
void config_describe(const struct config *c, char *buf, size_t cap);

/* Print the options reference (--help). */
void config_print_help(FILE *f);

#endif
