/* tunnel: one `natclient listen ID` or `natclient connect ID` session: the
 * socket, the rendezvous (registration / offer and answer), candidate
 * gathering (host, server-reflexive, relayed), the ICE checks, and the data
 * between the chosen path and stdin/stdout, a local UDP service (--expose)
 * or local UDP clients (--local). Progress for a person on stderr, or one
 * JSON object per line per event on stdout with --json. */
#ifndef NATCLIENT_TUNNEL_H
#define NATCLIENT_TUNNEL_H

#include <stdbool.h>

#include "predict.h"
#include "settings.h"
#include "stun_msg.h"

enum tunnel_role { TUNNEL_LISTEN, TUNNEL_CONNECT };
enum tunnel_relay { TUNNEL_RELAY_AUTO, TUNNEL_RELAY_ALWAYS, TUNNEL_RELAY_NEVER };

struct tunnel_opts {
	enum tunnel_role role;
	const char *id;
	stun_sockaddr server;
	const char *server_name;
	/* tcp:// or tls://: the server flow runs over one connection (RFC 8656
	 * s3.1) and the relayed candidate is the only one */
	enum settings_transport transport;
	const char *server_host;   /* the name the TLS certificate must carry */
	const char *ca;            /* --ca FILE, NULL: the system's CAs */
	bool insecure;             /* --insecure: no certificate check */
	const char *user, *password;
	enum tunnel_relay relay;
	double timeout_s;          /* connect: give up after this (default 30) */
	unsigned relay_fallback_ms;/* 0: ice.c's default (1.5 s) */
	unsigned consent_timeout_ms;/* 0: ice.c's default (30 s, RFC 7675) */
	unsigned max_sessions;     /* listen --expose: sessions at once; 0: 16 */
	bool has_expose;           /* listen --expose HOST:PORT */
	stun_sockaddr expose;
	bool has_local;            /* connect --local HOST:PORT */
	stun_sockaddr local;
	struct predict_opts predict; /* --predict; all zero: the defaults */
	bool json;
	int verbose;
};

/* Runs until the session ends, a signal, or a failure. Returns the exit
 * status: 0, or 1 with the reason printed. */
int tunnel_run(const struct tunnel_opts *o);

#endif
