/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A small JSON reader for what securelinkd's STATUS answers: enough to lay
 * the status out as a table. Numbers are kept as text and converted on
 * request, so kids and times stay exact. */

typedef enum JsonType {
	JSON_NULL,
	JSON_BOOLEAN,
	JSON_NUMBER,
	JSON_STRING,
	JSON_ARRAY,
	JSON_OBJECT,
	_JSON_TYPE_MAX,
} JsonType;

typedef struct Json Json;
struct Json {
	JsonType type;
	bool boolean;
	char *text;   /* JSON_STRING: the unescaped string; JSON_NUMBER: as written */
	size_t n;     /* JSON_ARRAY / JSON_OBJECT: number of items */
	char **keys;  /* JSON_OBJECT: n keys */
	Json **items; /* JSON_ARRAY / JSON_OBJECT: n values */
};

/* Parses one JSON value that must make up all of s (white space around it
 * allowed). Nesting deeper than 32 levels is refused. Returns 0 and a tree
 * to free with json_free(), -EINVAL for malformed input, or -ENOMEM. */
int json_parse(const char *s, Json **ret);
Json *json_free(Json *j);
static inline void json_freep(Json **j)
{
	json_free(*j);
}

/* The member key of an object, or NULL (also when j is not an object). */
const Json *json_get(const Json *j, const char *key);

/* A number that is a whole decimal u64 ("42"): 0 and *ret; -EINVAL for any
 * other value (null, a string, "-1", "1.5"), -ERANGE on overflow. */
int json_get_u64(const Json *j, uint64_t *ret);
