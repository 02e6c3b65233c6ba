/* log: levelled, per-source rate-limited log lines. */
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = { "error", "warn", "info", "debug" };

/* Process-wide destination: written by the main thread (open/reload), read
 * by every thread. */
static int log_fd = STDERR_FILENO;
static int log_level = LOG_INFO;
static int log_to_file; /* log_fd is a file, not stderr */

int log_level_parse(const char *s)
{
	for (int i = 0; i <= LOG_DEBUG; i++)
		if (!strcasecmp(s, level_names[i]))
			return i;
	if (!strcasecmp(s, "warning"))
		return LOG_WARN;
	return -1;
}

const char *log_level_name(int level)
{
	if (level < 0 || level > LOG_DEBUG)
		return "?";
	return level_names[level];
}

static int is_stderr_path(const char *path)
{
	return !path || !*path || !strcmp(path, "-") || !strcmp(path, "stderr");
}

/* The fd number writers use never changes once a file was opened: a new
 * destination is dup2()ed onto it, so a thread writing while the main
 * thread reopens can never hit a closed (or reused) descriptor. */
int log_open(int level, const char *path)
{
	int fd, cur = __atomic_load_n(&log_fd, __ATOMIC_ACQUIRE);

	if (is_stderr_path(path)) {
		if (cur != STDERR_FILENO && dup2(STDERR_FILENO, cur) < 0)
			return -errno;
		__atomic_store_n(&log_to_file, 0, __ATOMIC_RELEASE);
		__atomic_store_n(&log_level, level, __ATOMIC_RELAXED);
		return 0;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	if (cur == STDERR_FILENO) {
		__atomic_store_n(&log_fd, fd, __ATOMIC_RELEASE);
	} else {
		if (dup3(fd, cur, O_CLOEXEC) < 0) {
			int r = -errno;

			close(fd);
			return r;
		}
		close(fd);
	}
	__atomic_store_n(&log_to_file, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&log_level, level, __ATOMIC_RELAXED);
	return 0;
}

void log_close(void)
{
	int old = __atomic_exchange_n(&log_fd, STDERR_FILENO, __ATOMIC_ACQ_REL);

	__atomic_store_n(&log_to_file, 0, __ATOMIC_RELEASE);
	if (old != STDERR_FILENO)
		close(old);
}

int log_get_level(void)
{
	return __atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

static size_t stamp(char *buf, size_t cap, int level)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	return snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
			tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level_names[level]);
}

static void emit(int fd, int level, const char *prefix, const char *fmt, va_list ap)
{
	char line[1024];
	size_t n = stamp(line, sizeof(line), level);
	int r;

	if (prefix) {
		r = snprintf(line + n, sizeof(line) - n, "%s", prefix);
		n += r > 0 ? (size_t)r : 0;
		if (n >= sizeof(line))
			n = sizeof(line) - 1;
	}
	r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	n += r > 0 ? (size_t)r : 0;
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	/* Control characters from the wire never reach the log verbatim. */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
			line[i] = '?';
	line[n++] = '\n';
	if (write(fd, line, n) < 0) {
		/* nowhere left to report it */
	}
}

void log_vmsg(int level, const char *fmt, va_list ap)
{
	if (!log_enabled(level))
		return;
	emit(__atomic_load_n(&log_fd, __ATOMIC_ACQUIRE), level, NULL, fmt, ap);
}

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void log_notice(const char *fmt, ...)
{
	int fd = __atomic_load_n(&log_fd, __ATOMIC_ACQUIRE);
	va_list ap;

	va_start(ap, fmt);
	emit(STDERR_FILENO, LOG_INFO, NULL, fmt, ap);
	va_end(ap);
	if (!__atomic_load_n(&log_to_file, __ATOMIC_ACQUIRE))
		return;
	va_start(ap, fmt);
	emit(fd, LOG_INFO, NULL, fmt, ap);
	va_end(ap);
}

/* Per-thread table of recent sources: a small direct-mapped cache keyed by
 * a hash of the address (the port is ignored: one host, one budget). */
#define RL_SLOTS 256
struct rl_slot {
	uint32_t key;
	time_t window;
	unsigned lines;
	unsigned suppressed;
};
static __thread struct rl_slot rl_tab[RL_SLOTS];

static uint32_t addr_key(const struct sockaddr *sa)
{
	const uint8_t *p;
	size_t len;
	uint32_t h = 2166136261u;

	if (sa->sa_family == AF_INET) {
		p = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
		len = 4;
	} else if (sa->sa_family == AF_INET6) {
		p = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
		len = 16;
	} else {
		return 0;
	}
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	return h | 1; /* 0 marks an empty slot */
}

static void addr_text(const struct sockaddr *sa, char *buf, size_t cap)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
		snprintf(buf, cap, "%s:%u: ", ip, ntohs(s->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
		snprintf(buf, cap, "[%s]:%u: ", ip, ntohs(s->sin6_port));
	} else {
		snprintf(buf, cap, "?: ");
	}
}

/* Returns how many earlier lines were suppressed (to mention), or -1 if
 * this line must be suppressed too. */
static int rl_admit(uint32_t key)
{
	struct rl_slot *s = &rl_tab[key % RL_SLOTS];
	time_t now = time(NULL);
	int sup;

	if (s->key != key || now - s->window >= LOG_RL_WINDOW) {
		sup = s->key == key ? (int)s->suppressed : 0;
		*s = (struct rl_slot){ .key = key, .window = now, .lines = 1 };
		return sup;
	}
	if (s->lines >= LOG_RL_BURST) {
		s->suppressed++;
		return -1;
	}
	s->lines++;
	return 0;
}

void log_peer(int level, const struct sockaddr *peer, const char *fmt, ...)
{
	char prefix[96];
	va_list ap;
	int sup;

	if (!log_enabled(level))
		return;
	sup = rl_admit(addr_key(peer));
	if (sup < 0)
		return;
	addr_text(peer, prefix, sizeof(prefix));
	if (sup > 0)
		log_msg(level, "%s(%d similar lines suppressed in the last %ds)",
			prefix, sup, LOG_RL_WINDOW);
	va_start(ap, fmt);
	emit(__atomic_load_n(&log_fd, __ATOMIC_ACQUIRE), level, prefix, fmt, ap);
	va_end(ap);
}
