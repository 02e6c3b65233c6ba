/* bench_util: the process and timing helpers the bench programs share
 * (header-only: each bench program is one translation unit). */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

/* Set once SIGINT or SIGTERM arrives (see bench_catch_stop). */
static volatile sig_atomic_t bench_stopped;

static inline void bench_on_stop_signal(int sig)
{
	(void)sig;
	bench_stopped = 1;
}

/* SIGINT and SIGTERM set bench_stopped; no SA_RESTART, so a blocking call
 * returns EINTR and the loop sees it. */
static inline void bench_catch_stop(void)
{
	struct sigaction sa = { .sa_handler = bench_on_stop_signal };

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static inline uint64_t bench_clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t bench_now_ns(void)
{
	return bench_clock_ns(CLOCK_MONOTONIC);
}

/* This process's CPU time (user + system). */
static inline uint64_t bench_cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
}

/* A large receive buffer: the load side is the one that must not drop;
 * SO_RCVBUFFORCE passes rmem_max as root only, else best effort. */
static inline void bench_big_rcvbuf(int fd, int bytes)
{
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
}

/* Point n mmsghdrs at n buffers laid out stride bytes apart, one iovec
 * each of len bytes (0: the sender sets each length as it fills it). */
static inline void bench_mmsg_setup(struct mmsghdr *m, struct iovec *iov, uint8_t *bufs,
				    size_t stride, size_t len, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		iov[i].iov_base = bufs + i * stride;
		iov[i].iov_len = len;
		m[i].msg_hdr.msg_iov = &iov[i];
		m[i].msg_hdr.msg_iovlen = 1;
	}
}

#endif
