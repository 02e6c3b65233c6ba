/* settings: where natclient finds its server and credentials: --server,
 * --config FILE (key = value), the environment (NATCLIENT_SERVER,
 * NATCLIENT_USER, NATCLIENT_PASSWORD), or a prompt on the terminal. A
 * password is never taken from the command line. */
#ifndef NATCLIENT_SETTINGS_H
#define NATCLIENT_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stun_msg.h"

#define NATCLIENT_DEFAULT_PORT 3478
#define NATCLIENT_DEFAULT_TLS_PORT 5349 /* RFC 8489 s6.2.2: STUN over TLS */

#define SETTINGS_MAX_SESSIONS 256

struct settings {
	char server[256];   /* [udp://|tcp://|tls://]HOST[:PORT] */
	char ca[1024];      /* "ca = FILE" / --ca: CA certificates for tls:// */
	bool insecure;      /* --insecure: tls:// without a certificate check */
	char user[256];
	char password[256];
	unsigned max_sessions;      /* "max-sessions = N": listen --expose; 0: 16 */
	unsigned relay_fallback_ms; /* "relay-fallback = SECONDS"; 0: default */
	unsigned consent_timeout_ms;/* "consent-timeout = SECONDS"; 0: 30 s */
};

/* Read FILE: lines "key = value", '#' starts a comment. Keys: server,
 * user (or username), password, relay-fallback (seconds, e.g. 1.5), consent-timeout (seconds: a path
 * without a consent answer this long is lost and re-established). Earlier values (from --server) are kept.
 * On error writes "FILE:LINE: what; what is accepted" into err. */
int settings_load_file(struct settings *s, const char *path, char *err, size_t cap);
/* Fill what is still empty from NATCLIENT_SERVER / _USER / _PASSWORD. */
void settings_load_env(struct settings *s);
/* Ask on /dev/tty for a missing user or password (no echo for the
 * password). -ENOTTY when there is no terminal. */
int settings_prompt(struct settings *s);
/* How natclient reaches its server: UDP (the default), or one TCP or TLS
 * connection (RFC 8656 s3.1) when UDP is blocked. */
enum settings_transport { SETTINGS_UDP, SETTINGS_TCP, SETTINGS_TLS };

struct settings_server {
	enum settings_transport tp;
	char host[256];     /* as given: the name a TLS certificate must carry */
	stun_sockaddr addr;
};

/* "[udp://|tcp://|tls://]HOST[:PORT]" -> transport, host and address
 * (default port 3478, 5349 for tls://). */
int settings_server_parse(const char *spec, struct settings_server *out, char *err, size_t cap);
/* "udp", "tcp", "tls" */
const char *settings_transport_str(enum settings_transport tp);

/* "host", "host:port", "1.2.3.4:5", "[::1]:5" -> an address. */
int settings_resolve(const char *hostport, uint16_t default_port, stun_sockaddr *out,
		     char *err, size_t cap);

#endif
