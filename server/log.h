/* log: levelled log lines to stderr or a log file, rate-limited per source.
 * Thread-safe: each line is one write(). Callers never pass secrets. */
#ifndef STUND_LOG_H
#define STUND_LOG_H

#include <stdarg.h>
#include <sys/socket.h>

enum log_level {
	LOG_ERROR = 0,
	LOG_WARN = 1,
	LOG_INFO = 2,
	LOG_DEBUG = 3,
};

/* Per-source rate limit: at most LOG_RL_BURST lines per LOG_RL_WINDOW
 * seconds per source address; the rest are counted and summarised. */
#define LOG_RL_BURST 5
#define LOG_RL_WINDOW 10

/* Parse "error|warn|info|debug"; returns the level or -1. */
int log_level_parse(const char *s);
const char *log_level_name(int level);

/* Open the destination: path NULL, "", "stderr" or "-" is stderr. Replaces
 * the previous destination (used on reload, also for log rotation).
 * Returns 0 or -errno. */
int log_open(int level, const char *path);
void log_close(void);
int log_get_level(void);
static inline int log_enabled(int level) { return level <= log_get_level(); }

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(int level, const char *fmt, va_list ap);

/* A line about a packet or connection from peer: prefixed with the peer's
 * address and rate-limited per source address (per thread). */
void log_peer(int level, const struct sockaddr *peer, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Always written to stderr, and to the log file too if one is open
 * (readiness lines a supervisor waits for). */
void log_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
