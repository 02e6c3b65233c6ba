/* discover: what NAT are we behind? RFC 5780 s4.3 mapping and s4.4
 * filtering tests (OTHER-ADDRESS, CHANGE-REQUEST), hairpinning, the port
 * allocation pattern, and optionally the binding lifetime (s4.6), named in
 * RFC 4787 terms and with the classic (RFC 3489) name. */
#ifndef NATCLIENT_DISCOVER_H
#define NATCLIENT_DISCOVER_H

#include <stdbool.h>
#include <stdint.h>
#include <ev.h>

#include "stun_msg.h"

enum nat_mapping {
	NAT_MAP_UNKNOWN,
	NAT_MAP_NONE,  /* mapped address == local address: no NAT */
	NAT_MAP_EI,    /* endpoint-independent */
	NAT_MAP_AD,    /* address-dependent */
	NAT_MAP_APD,   /* address-and-port-dependent */
};

enum nat_filtering {
	NAT_FILT_UNKNOWN,
	NAT_FILT_EI,
	NAT_FILT_AD,
	NAT_FILT_APD,
};

enum nat_port_alloc {
	NAT_PORT_UNKNOWN,
	NAT_PORT_PRESERVING,
	NAT_PORT_SEQUENTIAL,
	NAT_PORT_RANDOM,
};

/* Test outcomes fed to the classifiers. */
enum nat_probe { NAT_PROBE_NOT_RUN = -1, NAT_PROBE_NO_ANSWER = 0, NAT_PROBE_ANSWER = 1 };

/* s4.3: t1..t3 are the mapped addresses of tests I-III (NULL: not run or
 * no answer); local is the socket's own address. */
enum nat_mapping nat_mapping_classify(const stun_sockaddr *local, const stun_sockaddr *t1,
				      const stun_sockaddr *t2, const stun_sockaddr *t3);
/* s4.4: t2 = change IP and port, t3 = change port. */
enum nat_filtering nat_filtering_classify(enum nat_probe t2, enum nat_probe t3);
/* Mapped ports seen from one socket sending to several endpoints, in the
 * order the mappings were made. *delta is set when sequential. */
enum nat_port_alloc nat_port_classify(uint16_t local_port, const uint16_t *ports, int n,
				      int *delta);
/* The classic name: "open internet", "full cone", "restricted cone",
 * "port-restricted cone", "symmetric", "symmetric udp firewall", "unknown". */
const char *nat_type_name(enum nat_mapping m, enum nat_filtering f);

const char *nat_mapping_str(enum nat_mapping m);     /* RFC 4787 term or "none" */
const char *nat_filtering_str(enum nat_filtering f);
const char *nat_port_alloc_str(enum nat_port_alloc p);

#define DISCOVER_MAX_PORTS 4

struct discover_opts {
	stun_sockaddr server;
	bool lifetime;             /* run the s4.6 binding lifetime test */
	unsigned lifetime_max_s;   /* its bound */
	int verbose;
};

struct discover_result {
	stun_sockaddr local;       /* the socket the tests ran on */
	stun_sockaddr public_addr; /* XOR-MAPPED-ADDRESS of test I */
	bool rfc5780;              /* the server sent OTHER-ADDRESS */
	stun_sockaddr other;       /* OTHER-ADDRESS */
	enum nat_mapping mapping;
	enum nat_filtering filtering;
	enum nat_port_alloc port_alloc;
	int delta;
	uint16_t ports[DISCOVER_MAX_PORTS];
	uint16_t ports_local;
	int n_ports;
	int hairpinning;           /* 1 yes, 0 no, -1 unknown */
	/* lifetime: alive at lifetime_min_s; expired at lifetime_max_s (0: not
	 * seen expiring within the bound); lifetime_supported false if the
	 * server refused RESPONSE-PORT. */
	bool lifetime_run, lifetime_supported;
	unsigned lifetime_min_s, lifetime_max_s;
	unsigned elapsed_ms;
};

/* Run the tests against o->server on loop. Returns 0, or a negative errno
 * (-ETIMEDOUT: the server never answered test I; *why says what failed). */
int discover_run(struct ev_loop *loop, const struct discover_opts *o,
		 struct discover_result *r, const char **why);

#endif
