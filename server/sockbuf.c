/* sockbuf: socket buffer sizes of UDP sockets. */
#include "sockbuf.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"

static atomic_bool logged[SOCKBUF_KINDS];

static const char *const kind_name[SOCKBUF_KINDS] = {
	[SOCKBUF_LISTENER] = "UDP listening", [SOCKBUF_RELAY] = "UDP relayed",
};

/* The forced option when permitted (CAP_NET_ADMIN), else the capped one. */
static int set_one(int fd, int force_opt, int opt, uint32_t bytes)
{
	int v = bytes > (uint32_t)(INT32_MAX / 2) ? INT32_MAX / 2 : (int)bytes;

	if (!bytes)
		return 0;
	if (!setsockopt(fd, SOL_SOCKET, force_opt, &v, sizeof(v)))
		return 0;
	if (!setsockopt(fd, SOL_SOCKET, opt, &v, sizeof(v)))
		return 0;
	return -errno;
}

static int granted(int fd, int opt)
{
	int v = 0;
	socklen_t l = sizeof(v);

	return getsockopt(fd, SOL_SOCKET, opt, &v, &l) ? -1 : v;
}

int sockbuf_apply(int fd, uint32_t rcv, uint32_t snd, enum sockbuf_kind what)
{
	int r = set_one(fd, SO_RCVBUFFORCE, SO_RCVBUF, rcv);
	int s = set_one(fd, SO_SNDBUFFORCE, SO_SNDBUF, snd);

	if (atomic_exchange(&logged[what], true))
		return r ? r : s;
	/* the kernel reports twice what it was asked (bookkeeping overhead) */
	log_msg(r || s ? LOG_WARN : LOG_INFO,
		"%s sockets: receive buffer %d bytes (asked %u), send buffer %d bytes "
		"(asked %u)%s", kind_name[what], granted(fd, SO_RCVBUF), rcv,
		granted(fd, SO_SNDBUF), snd,
		r || s ? ": not accepted; raise net.core.rmem_max / wmem_max" : "");
	return r ? r : s;
}
