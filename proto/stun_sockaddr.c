/* stun_sockaddr: helpers on the socket addresses stun_msg decodes into. */
#include "stun_msg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int stun_sockaddr_family(const stun_sockaddr *a)
{
	return a->sa.sa_family;
}

socklen_t stun_sockaddr_len(const stun_sockaddr *a)
{
	if (a->sa.sa_family == AF_INET6)
		return sizeof(struct sockaddr_in6);
	if (a->sa.sa_family == AF_INET)
		return sizeof(struct sockaddr_in);
	return 0;
}

uint16_t stun_sockaddr_port(const stun_sockaddr *a)
{
	if (a->sa.sa_family == AF_INET6)
		return ntohs(a->in6.sin6_port);
	if (a->sa.sa_family == AF_INET)
		return ntohs(a->in4.sin_port);
	return 0;
}

void stun_sockaddr_set_port(stun_sockaddr *a, uint16_t port)
{
	if (a->sa.sa_family == AF_INET6)
		a->in6.sin6_port = htons(port);
	else if (a->sa.sa_family == AF_INET)
		a->in4.sin_port = htons(port);
}

bool stun_sockaddr_equal(const stun_sockaddr *a, const stun_sockaddr *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	if (stun_sockaddr_port(a) != stun_sockaddr_port(b))
		return false;
	if (a->sa.sa_family == AF_INET)
		return a->in4.sin_addr.s_addr == b->in4.sin_addr.s_addr;
	if (a->sa.sa_family == AF_INET6)
		return !memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, 16);
	return false;
}

char *stun_sockaddr_str(const stun_sockaddr *a, char *buf, size_t cap)
{
	char ip[INET6_ADDRSTRLEN];
	bool v6 = a->sa.sa_family == AF_INET6;
	const void *src = v6 ? (const void *)&a->in6.sin6_addr : (const void *)&a->in4.sin_addr;

	if (!buf || cap == 0)
		return buf;
	if ((!v6 && a->sa.sa_family != AF_INET) ||
	    !inet_ntop(a->sa.sa_family, src, ip, sizeof(ip))) {
		snprintf(buf, cap, "?");
		return buf;
	}
	snprintf(buf, cap, v6 ? "[%s]:%u" : "%s:%u", ip, stun_sockaddr_port(a));
	return buf;
}

static int parse_port(const char *s, uint16_t *port)
{
	char *end;
	unsigned long v;

	if (!*s || *s == '-' || *s == '+')
		return STUN_E_ARG;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > 65535)
		return STUN_E_ARG;
	*port = (uint16_t)v;
	return 0;
}

static int fill(stun_sockaddr *a, const char *host, uint16_t port)
{
	stun_sockaddr t;

	memset(&t, 0, sizeof(t));
	if (inet_pton(AF_INET, host, &t.in4.sin_addr) == 1) {
		t.in4.sin_family = AF_INET;
		t.in4.sin_port = htons(port);
	} else if (inet_pton(AF_INET6, host, &t.in6.sin6_addr) == 1) {
		t.in6.sin6_family = AF_INET6;
		t.in6.sin6_port = htons(port);
	} else {
		return STUN_E_ARG;
	}
	*a = t;
	return 0;
}

/* "1.2.3.4:5", "[::1]:5", "1.2.3.4", "::1", "[::1]". */
int stun_sockaddr_parse(stun_sockaddr *a, const char *s, uint16_t default_port)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon, *close;
	uint16_t port = default_port;
	size_t n;

	if (!a || !s || strlen(s) >= sizeof(host) + 6)
		return STUN_E_ARG;
	if (*s == '[') {
		close = strchr(s, ']');
		if (!close || (close[1] && close[1] != ':'))
			return STUN_E_ARG;
		if (close[1] && parse_port(close + 2, &port))
			return STUN_E_ARG;
		n = (size_t)(close - s - 1);
		if (n >= sizeof(host))
			return STUN_E_ARG;
		memcpy(host, s + 1, n);
		host[n] = '\0';
		return fill(a, host, port);
	}
	colon = strchr(s, ':');
	if (!colon || strchr(colon + 1, ':'))
		return fill(a, s, port); /* bare IPv4 or bare IPv6 */
	n = (size_t)(colon - s);
	if (n >= sizeof(host) || parse_port(colon + 1, &port))
		return STUN_E_ARG;
	memcpy(host, s, n);
	host[n] = '\0';
	return fill(a, host, port);
}
