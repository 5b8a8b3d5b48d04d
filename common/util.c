/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <ctype.h>
#include <strings.h>
#include <inttypes.h>
#include <time.h>

#include "util.h"

void strv_free(char **l)
{
	if (!l)
		return;
	for (char **i = l; *i; i++)
		free(*i);
	free(l);
}

size_t strv_length(char *const *l)
{
	size_t n = 0;

	if (!l)
		return 0;
	while (l[n])
		n++;
	return n;
}

int strv_consume(char ***l, char *s)
{
	size_t n = strv_length(*l);
	char **m;

	assert(l);
	if (!s)
		return -ENOMEM;
	m = reallocarray(*l, n + 2, sizeof(char *));
	if (!m) {
		free(s);
		return -ENOMEM;
	}
	m[n] = s;
	m[n + 1] = NULL;
	*l = m;
	return 0;
}

int parse_u64(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	/* strtoull accepts leading spaces and a sign: refuse both, the callers
	 * parse untrusted text. */
	if (!s || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (errno != 0 || *end != '\0')
		return -EINVAL;
	*ret = (uint64_t)v;
	return 0;
}

int parse_u64_as_i64(const char *s, int64_t *ret)
{
	uint64_t v;
	int r;

	r = parse_u64(s, &v);
	if (r < 0)
		return r;
	if (v > INT64_MAX)
		return -ERANGE;
	*ret = (int64_t)v;
	return 0;
}

size_t format_u64(uint64_t v, char *out)
{
	/* Two digits per division, written from the end: a SIGN formats two
	 * numbers, and the digit-by-digit loop cost a tenth of a SIGN. */
	static const char pairs[] = "00010203040506070809"
	                            "10111213141516171819"
	                            "20212223242526272829"
	                            "30313233343536373839"
	                            "40414243444546474849"
	                            "50515253545556575859"
	                            "60616263646566676869"
	                            "70717273747576777879"
	                            "80818283848586878889"
	                            "90919293949596979899";
	static const uint64_t pow10[20] = {
		1ULL,
		10ULL,
		100ULL,
		1000ULL,
		10000ULL,
		100000ULL,
		1000000ULL,
		10000000ULL,
		100000000ULL,
		1000000000ULL,
		10000000000ULL,
		100000000000ULL,
		1000000000000ULL,
		10000000000000ULL,
		100000000000000ULL,
		1000000000000000ULL,
		10000000000000000ULL,
		100000000000000000ULL,
		1000000000000000000ULL,
		10000000000000000000ULL,
	};
	size_t n = 1, i;

	while (n < 20 && v >= pow10[n])
		n++;
	i = n;
	while (v >= 100) {
		unsigned r = (unsigned)(v % 100);

		v /= 100;
		out[--i] = pairs[2 * r + 1];
		out[--i] = pairs[2 * r];
	}
	if (v >= 10) {
		out[--i] = pairs[2 * v + 1];
		out[--i] = pairs[2 * v];
	} else
		out[--i] = (char)('0' + v);
	assert(i == 0);
	return n;
}

static const struct {
	const char *suffix;
	usec_t unit;
} duration_units[] = {
	/* Longest suffix first: "ms" must win over "m". */
	{ "ms", USEC_PER_MSEC }, { "s", USEC_PER_SEC }, { "m", USEC_PER_MINUTE },
	{ "h", USEC_PER_HOUR },  { "d", USEC_PER_DAY },
};

int parse_duration(const char *s, usec_t *ret)
{
	size_t digits, i;
	char number[32];
	uint64_t v;
	usec_t unit = USEC_PER_SEC;
	int r;

	if (!s)
		return -EINVAL;
	digits = strspn(s, "0123456789");
	if (digits == 0 || digits >= sizeof(number))
		return digits == 0 ? -EINVAL : -ERANGE;

	if (s[digits] != '\0') {
		for (i = 0; i < ELEMENTSOF(duration_units); i++)
			if (streq(s + digits, duration_units[i].suffix))
				break;
		if (i == ELEMENTSOF(duration_units))
			return -EINVAL;
		unit = duration_units[i].unit;
	}

	memcpy(number, s, digits);
	number[digits] = '\0';
	r = parse_u64(number, &v);
	if (r < 0)
		return r;
	if (v > USEC_INFINITY / unit - 1)
		return -ERANGE;
	*ret = v * unit;
	return 0;
}

const char *format_duration(char *buf, size_t size, usec_t d)
{
	for (size_t i = ELEMENTSOF(duration_units); i > 0; i--) {
		usec_t unit = duration_units[i - 1].unit;

		if (d != 0 && d % unit == 0) {
			snprintf(buf, size, "%" PRIu64 "%s", d / unit,
			         duration_units[i - 1].suffix);
			return buf;
		}
	}
	if (d == 0)
		snprintf(buf, size, "0s");
	else
		snprintf(buf, size, "%" PRIu64 "us", d);
	return buf;
}

int parse_boolean(const char *s)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < ELEMENTSOF(yes); i++)
		if (strcasecmp(s, yes[i]) == 0)
			return 1;
	for (size_t i = 0; i < ELEMENTSOF(no); i++)
		if (strcasecmp(s, no[i]) == 0)
			return 0;
	return -EINVAL;
}

int strv_split(const char *s, char ***ret)
{
	static const char separators[] = " \t,";
	char **l;
	size_t n = 0, i = 0;
	const char *p;

	/* Count first, so the array is allocated once. */
	for (p = s; *p;) {
		p += strspn(p, separators);
		if (!*p)
			break;
		n++;
		p += strcspn(p, separators);
	}

	l = calloc(n + 1, sizeof(char *));
	if (!l)
		return -ENOMEM;

	for (p = s; *p;) {
		size_t k;

		p += strspn(p, separators);
		if (!*p)
			break;
		k = strcspn(p, separators);
		l[i] = strndup(p, k);
		if (!l[i]) {
			strv_free(l);
			return -ENOMEM;
		}
		i++;
		p += k;
	}

	*ret = l;
	return 0;
}

static usec_t now_clock(clockid_t clock)
{
	struct timespec ts;

	/* Both clocks always exist on Linux; a failure is a broken system. */
	if (clock_gettime(clock, &ts) < 0)
		abort();
	return (usec_t)ts.tv_sec * USEC_PER_SEC + (usec_t)ts.tv_nsec / 1000;
}

usec_t now_realtime(void)
{
	return now_clock(CLOCK_REALTIME);
}

usec_t now_monotonic(void)
{
	return now_clock(CLOCK_MONOTONIC);
}
