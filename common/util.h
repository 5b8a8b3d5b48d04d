/* SPDX-License-Identifier: MIT */
#pragma once

/* Small helpers shared by every part of securelink: cleanup attributes,
 * strict number parsing and time units. No secrets pass through here. */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef uint64_t usec_t;

#define USEC_PER_MSEC   ((usec_t)1000ULL)
#define USEC_PER_SEC    ((usec_t)1000000ULL)
#define USEC_PER_MINUTE (60ULL * USEC_PER_SEC)
#define USEC_PER_HOUR   (60ULL * USEC_PER_MINUTE)
#define USEC_PER_DAY    (24ULL * USEC_PER_HOUR)
#define USEC_INFINITY   ((usec_t)UINT64_MAX)

#define ELEMENTSOF(x)  (sizeof(x) / sizeof((x)[0]))
#define STRLEN(s)      (sizeof("" s "") - 1)
#define streq(a, b)    (strcmp((a), (b)) == 0)
#define _unused_       __attribute__((unused))
#define _cleanup_(f)   __attribute__((cleanup(f)))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

static inline void freep(void *p)
{
	free(*(void **)p);
}

static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

static inline void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

/* Frees a NULL-terminated array of strings. */
void strv_free(char **l);
static inline void strv_freep(char ***l)
{
	strv_free(*l);
}

#define _cleanup_free_      _cleanup_(freep)
#define _cleanup_close_     _cleanup_(closep)
#define _cleanup_fclose_    _cleanup_(fclosep)
#define _cleanup_strv_free_ _cleanup_(strv_freep)

/* Steals a pointer out of a cleanup variable: returns it and leaves NULL. */
#define TAKE_PTR(p)                                                                                \
	({                                                                                         \
		__typeof__(p) _p = (p);                                                            \
		(p) = NULL;                                                                        \
		_p;                                                                                \
	})
#define TAKE_FD(fd)                                                                                \
	({                                                                                         \
		int _fd = (fd);                                                                    \
		(fd) = -1;                                                                         \
		_fd;                                                                               \
	})

/* Parses a whole string as a decimal unsigned number: no sign, no spaces, no
 * trailing bytes, no overflow. Returns 0, -EINVAL or -ERANGE. */
int parse_u64(const char *s, uint64_t *ret);

/* parse_u64() for a value that must also fit an int64_t (unix times).
 * Returns 0, -EINVAL or -ERANGE. */
int parse_u64_as_i64(const char *s, int64_t *ret);

/* Writes v in decimal to out, without a NUL; out needs 20 bytes. Returns the
 * number of digits. For hot paths where printf's cost shows. */
size_t format_u64(uint64_t v, char *out);

/* Parses a duration: a number followed by one of ms, s, m, h, d ("300ms",
 * "90s", "15m", "24h", "7d"); a bare number means seconds. Returns 0, -EINVAL
 * or -ERANGE. */
int parse_duration(const char *s, usec_t *ret);

/* Formats a duration the way parse_duration() reads it, largest exact unit
 * first ("24h", "90s", "300ms"). buf must hold at least 32 bytes. */
const char *format_duration(char *buf, size_t size, usec_t d);

/* Parses yes/no/true/false/on/off/1/0. Returns 1, 0 or -EINVAL. */
int parse_boolean(const char *s);

/* Splits s on spaces, tabs and commas into a NULL-terminated array. Empty
 * fields are skipped. Returns 0 or -ENOMEM. */
int strv_split(const char *s, char ***ret);
size_t strv_length(char *const *l);
/* Appends s to *l (NULL or a NULL-terminated array), taking it over; on
 * failure s is freed. Returns 0 or -ENOMEM. */
int strv_consume(char ***l, char *s);

/* Current CLOCK_REALTIME / CLOCK_MONOTONIC time in microseconds. */
usec_t now_realtime(void);
usec_t now_monotonic(void);

/* malloc'd copy of size bytes, or NULL. */
static inline void *memdup(const void *p, size_t size)
{
	void *q = malloc(size ? size : 1);

	if (q && size)
		memcpy(q, p, size);
	return q;
}
