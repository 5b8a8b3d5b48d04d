/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdarg.h>
#include <time.h>

#include "proto.h"
#include "status.h"

/* A growing string; every append checks for allocation failure once, at
 * the end, through the error flag. */
typedef struct Buf {
	char *data;
	size_t len, size;
	bool oom;
} Buf;

static void buf_printf(Buf *b, const char *format, ...) _printf_(2, 3);
static void buf_printf(Buf *b, const char *format, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, format);
		n = vsnprintf(b->data ? b->data + b->len : NULL, b->data ? b->size - b->len : 0,
		              format, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if (b->data && b->len + (size_t)n < b->size) {
			b->len += (size_t)n;
			return;
		}
		size_t want = (b->size ? b->size : 256);
		while (want <= b->len + (size_t)n)
			want *= 2;
		char *p = realloc(b->data, want);
		if (!p) {
			b->oom = true;
			return;
		}
		b->data = p;
		b->size = want;
	}
}

static void buf_time(Buf *b, const char *name, usec_t t, bool comma)
{
	if (t == 0 || t == USEC_INFINITY)
		buf_printf(b, "\"%s\":null%s", name, comma ? "," : "");
	else
		buf_printf(b, "\"%s\":%" PRIu64 "%s", name, t / USEC_PER_SEC, comma ? "," : "");
}

/* ,"name":"escaped" or ,"name":null */
static void buf_json_string(Buf *b, const char *name, const char *value)
{
	_cleanup_free_ char *e = NULL;

	if (!value) {
		buf_printf(b, ",\"%s\":null", name);
		return;
	}
	if (json_escape(value, &e) < 0) {
		b->oom = true;
		return;
	}
	buf_printf(b, ",\"%s\":\"%s\"", name, e);
}

/* The requests an admin was told are queued, oldest first by kind. */
static void status_format_queued(Buf *b, const KeyRing *r, const StatusInfo *info)
{
	bool first = true;

	if (info->revoke_kid) {
		buf_printf(b, "{\"request\":\"revoke\",\"kid\":%" PRIu32 ",", info->revoke_kid);
		buf_time(b, "since", info->revoke_since, false);
		buf_printf(b, "}");
		first = false;
	}
	if (info->rotate_queued) {
		buf_printf(b, "%s{\"request\":\"rotate\",", first ? "" : ",");
		buf_time(b, "since", info->rotate_since, false);
		buf_printf(b, "}");
		first = false;
	}
	for (size_t i = 0; i < r->n_keys; i++) {
		const Key *k = &r->keys[i];

		if (!k->legacy || k->kid <= info->confirmed_kid)
			continue;
		buf_printf(b, "%s{\"request\":\"import\",\"kid\":%" PRIu32 ",", first ? "" : ",",
		           k->kid);
		buf_time(b, "since", k->published, false);
		buf_printf(b, "}");
		first = false;
	}
}

int status_format_json(const KeyRing *r, const Config *c, const StatusInfo *info, char **ret)
{
	const Key *active = keyring_active(r);
	Buf b = {};

	buf_printf(&b, "{");
	if (active)
		buf_printf(&b, "\"active_kid\":%" PRIu32 ",", active->kid);
	else
		buf_printf(&b, "\"active_kid\":null,");
	buf_time(&b, "next_rotation", info->next_rotation, true);
	buf_printf(&b, "\"mode\":\"%s\",", key_mode_to_string(c->mode));
	if (c->mode == KEY_MODE_DERIVED) {
		/* Every host of the fleet computes the same epochs; these
		 * tell an admin where in the schedule and in a master roll
		 * this one is. */
		buf_printf(&b, "\"epoch\":%" PRIu32 ",", info->epoch);
		buf_time(&b, "master_switch", info->master_switch, true);
		buf_time(&b, "previous_master_until", info->previous_until, true);
	}
	/* While a switch of algorithm is under way, nginx checks both. */
	buf_printf(&b, "\"links\":{\"algorithm\":\"%s\",\"checked\":[",
	           link_algorithm_to_string(info->algorithm));
	for (unsigned a = 0, n = 0; a < _LINK_ALGORITHM_MAX; a++)
		if (info->algorithms_checked & LINK_ALGORITHM_BIT(a))
			buf_printf(&b, "%s\"%s\"", n++ ? "," : "",
			           link_algorithm_to_string((LinkAlgorithm)a));
	buf_printf(&b, "],");
	buf_time(&b, "previous_until", info->algorithm_previous_until, false);
	buf_printf(&b, "},");
	buf_printf(&b, "\"keys\":[");
	for (size_t i = 0; i < r->n_keys; i++) {
		const Key *k = &r->keys[i];

		buf_printf(&b, "%s{\"kid\":%" PRIu32 ",\"state\":\"%s\",\"legacy\":%s,",
		           i ? "," : "", k->kid, key_state_to_string(k->state),
		           k->legacy ? "true" : "false");
		buf_time(&b, "published", k->published, true);
		buf_time(&b, "activated", k->activated, true);
		buf_time(&b, "retired", k->retired, true);
		buf_time(&b, "drop_after", k->drop_after, false);
		buf_printf(&b, "}");
	}
	buf_printf(&b, "],\"nginx\":{");
	buf_time(&b, "last_reload", info->last_reload, true);
	buf_printf(&b, "\"ok\":%s,", info->nginx_ok ? "true" : "false");
	buf_printf(&b, "\"pending\":%s,", info->nginx_pending ? "true" : "false");
	if (info->nginx_error) {
		_cleanup_free_ char *e = NULL;

		if (json_escape(info->nginx_error, &e) < 0)
			b.oom = true;
		else
			buf_printf(&b, "\"error\":\"%s\"", e);
	} else
		buf_printf(&b, "\"error\":null");
	/* "confirmed" means this much: with reload = none only that the test
	 * passed, with exec: that the command succeeded too. */
	if (info->nginx_confirmation)
		buf_printf(&b, ",\"confirmation\":\"%s\"", info->nginx_confirmation);
	else
		buf_printf(&b, ",\"confirmation\":null");
	buf_printf(&b, ",\"enforcing\":%s",
	           info->enforcing == 0  ? "null"
	           : info->enforcing > 0 ? "true"
	                                 : "false");
	buf_json_string(&b, "enforcing_reason", info->probe_reason);
	buf_json_string(&b, "probe_url", info->probe_url);
	buf_printf(&b, ",");
	buf_time(&b, "last_probe", info->last_probe, false);
	buf_printf(&b, "},\"queued\":[");
	status_format_queued(&b, r, info);
	buf_printf(&b,
	           "],\"counters\":{\"signed\":%" PRIu64 ",\"errors\":%" PRIu64
	           ",\"rotations\":%" PRIu64,
	           info->n_signed, info->n_errors, info->n_rotations);
	buf_printf(&b, ",\"reload_failures\":%" PRIu64 ",\"probe_failures\":%" PRIu64,
	           info->n_reload_failures, info->n_probe_failures);
	buf_printf(&b, ",\"errors_by_code\":{");
	for (int i = 0; i < _PROTO_ERROR_MAX; i++)
		buf_printf(&b, "%s\"%s\":%" PRIu64, i ? "," : "",
		           proto_error_to_string((ProtoError)i), info->n_errors_code[i]);
	buf_printf(&b, "}}}");

	if (b.oom) {
		free(b.data);
		return -ENOMEM;
	}
	*ret = b.data;
	return 0;
}

int status_format_line(const KeyRing *r, const StatusInfo *info, char **ret)
{
	const Key *active = keyring_active(r);
	char when[64] = "none";
	int n;

	/* Before anything else: the links protect nothing. */
	if (info->enforcing < 0) {
		n = asprintf(ret, "FAIL-OPEN: nginx serves private files without a token: %s (%s)",
		             info->probe_reason ? info->probe_reason : "",
		             info->probe_url ? info->probe_url : "");
		return n < 0 ? -ENOMEM : 0;
	}

	if (info->next_rotation != USEC_INFINITY) {
		time_t t = (time_t)(info->next_rotation / USEC_PER_SEC);
		struct tm tm;

		if (gmtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	}

	if (active)
		n = asprintf(ret, "active key %" PRIu32 ", next rotation %s; nginx: %s",
		             active->kid, when,
		             info->nginx_ok      ? "ok"
		             : info->nginx_error ? info->nginx_error
		                                 : "failed");
	else
		n = asprintf(ret, "no active key yet (publishing to nginx); nginx: %s",
		             info->nginx_ok      ? "ok"
		             : info->nginx_error ? info->nginx_error
		                                 : "failed");
	return n < 0 ? -ENOMEM : 0;
}
