/* sockbuf: socket buffer sizes (udp-recv-buffer, udp-send-buffer) for the
 * UDP listening and relayed sockets. */
#ifndef STUND_SOCKBUF_H
#define STUND_SOCKBUF_H

#include <stdbool.h>
#include <stdint.h>

/* Set SO_RCVBUF / SO_SNDBUF of fd to rcv / snd bytes (0 = leave the
 * kernel's default): SO_*BUFFORCE first (CAP_NET_ADMIN may exceed
 * net.core.rmem_max / wmem_max), else the plain option, which the kernel
 * caps. Logs what the kernel granted the first time for each `what` kind
 * (an index below SOCKBUF_KINDS) so 10,000 relayed sockets log once.
 * Returns 0, or a negative errno when neither option was accepted. */
enum sockbuf_kind { SOCKBUF_LISTENER, SOCKBUF_RELAY, SOCKBUF_KINDS };
int sockbuf_apply(int fd, uint32_t rcv, uint32_t snd, enum sockbuf_kind what);

#endif
