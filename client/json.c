/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "util.h"

#define JSON_DEPTH_MAX 32

typedef struct Parser {
	const char *p;
} Parser;

static void skip_space(Parser *ps)
{
	while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')
		ps->p++;
}

Json *json_free(Json *j)
{
	if (!j)
		return NULL;
	for (size_t i = 0; i < j->n; i++) {
		if (j->keys)
			free(j->keys[i]);
		if (j->items)
			json_free(j->items[i]);
	}
	free(j->keys);
	free(j->items);
	free(j->text);
	free(j);
	return NULL;
}

static int hex4(const char *s, unsigned *ret)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		char c = s[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -EINVAL;
	}
	*ret = v;
	return 0;
}

static size_t utf8_put(char *out, unsigned cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* A string starting at the opening quote. The unescaped text is never longer
 * than the escaped one (\uXXXX is 6 bytes for at most 3, a surrogate pair 12
 * for 4), so one buffer of the input's length holds it. */
static int parse_string(Parser *ps, char **ret)
{
	const char *s = ps->p + 1, *end;
	_cleanup_free_ char *out = NULL;
	size_t n = 0;

	assert(*ps->p == '"');
	end = s;
	while (*end && *end != '"') {
		if (*end == '\\' && end[1])
			end++;
		end++;
	}
	if (*end != '"')
		return -EINVAL;
	out = malloc((size_t)(end - s) + 1);
	if (!out)
		return -ENOMEM;

	while (s < end) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20)
			return -EINVAL;
		if (c != '\\') {
			out[n++] = (char)c;
			s++;
			continue;
		}
		s++;
		switch (*s) {
		case '"':
		case '\\':
		case '/':
			out[n++] = *s++;
			break;
		case 'b':
			out[n++] = '\b';
			s++;
			break;
		case 'f':
			out[n++] = '\f';
			s++;
			break;
		case 'n':
			out[n++] = '\n';
			s++;
			break;
		case 'r':
			out[n++] = '\r';
			s++;
			break;
		case 't':
			out[n++] = '\t';
			s++;
			break;
		case 'u': {
			unsigned cp, lo;

			if (end - s < 5 || hex4(s + 1, &cp) < 0)
				return -EINVAL;
			s += 5;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (end - s < 6 || s[0] != '\\' || s[1] != 'u' ||
				    hex4(s + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
					return -EINVAL;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				s += 6;
			} else if (cp >= 0xdc00 && cp <= 0xdfff)
				return -EINVAL;
			/* NUL would cut the string short in C: refuse it. */
			if (cp == 0)
				return -EINVAL;
			n += utf8_put(out + n, cp);
			break;
		}
		default:
			return -EINVAL;
		}
	}
	out[n] = '\0';
	ps->p = end + 1;
	*ret = TAKE_PTR(out);
	return 0;
}

static int parse_number(Parser *ps, char **ret)
{
	const char *s = ps->p, *q = s;
	char *t;

	/* The JSON grammar, strictly: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
	if (*q == '-')
		q++;
	if (*q == '0')
		q++;
	else if (*q >= '1' && *q <= '9')
		q += strspn(q, "0123456789");
	else
		return -EINVAL;
	if (*q == '.') {
		q++;
		if (!(*q >= '0' && *q <= '9'))
			return -EINVAL;
		q += strspn(q, "0123456789");
	}
	if (*q == 'e' || *q == 'E') {
		q++;
		if (*q == '+' || *q == '-')
			q++;
		if (!(*q >= '0' && *q <= '9'))
			return -EINVAL;
		q += strspn(q, "0123456789");
	}
	t = strndup(s, (size_t)(q - s));
	if (!t)
		return -ENOMEM;
	ps->p = q;
	*ret = t;
	return 0;
}

static int parse_value(Parser *ps, unsigned depth, Json **ret);

static int append(Json *j, char *key, Json *item)
{
	Json **items;

	items = reallocarray(j->items, j->n + 1, sizeof(Json *));
	if (!items)
		return -ENOMEM;
	j->items = items;
	if (j->type == JSON_OBJECT) {
		char **keys = reallocarray(j->keys, j->n + 1, sizeof(char *));
		if (!keys)
			return -ENOMEM;
		j->keys = keys;
		j->keys[j->n] = key;
	}
	j->items[j->n++] = item;
	return 0;
}

static int parse_container(Parser *ps, unsigned depth, Json *j)
{
	char close = j->type == JSON_OBJECT ? '}' : ']';
	int r;

	ps->p++;
	skip_space(ps);
	if (*ps->p == close) {
		ps->p++;
		return 0;
	}
	for (;;) {
		_cleanup_free_ char *key = NULL;
		Json *item = NULL;

		skip_space(ps);
		if (j->type == JSON_OBJECT) {
			if (*ps->p != '"')
				return -EINVAL;
			r = parse_string(ps, &key);
			if (r < 0)
				return r;
			skip_space(ps);
			if (*ps->p != ':')
				return -EINVAL;
			ps->p++;
		}
		r = parse_value(ps, depth + 1, &item);
		if (r < 0)
			return r;
		r = append(j, key, item);
		if (r < 0) {
			json_free(item);
			return r;
		}
		key = NULL; /* owned by j now */
		skip_space(ps);
		if (*ps->p == ',') {
			ps->p++;
			continue;
		}
		if (*ps->p != close)
			return -EINVAL;
		ps->p++;
		return 0;
	}
}

static int parse_value(Parser *ps, unsigned depth, Json **ret)
{
	_cleanup_(json_freep) Json *j = NULL;
	int r = 0;

	if (depth > JSON_DEPTH_MAX)
		return -EINVAL;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;

	skip_space(ps);
	switch (*ps->p) {
	case '{':
		j->type = JSON_OBJECT;
		r = parse_container(ps, depth, j);
		break;
	case '[':
		j->type = JSON_ARRAY;
		r = parse_container(ps, depth, j);
		break;
	case '"':
		j->type = JSON_STRING;
		r = parse_string(ps, &j->text);
		break;
	case 't':
	case 'f':
	case 'n': {
		static const struct {
			const char *word;
			JsonType type;
			bool value;
		} words[] = {
			{ "true", JSON_BOOLEAN, true },
			{ "false", JSON_BOOLEAN, false },
			{ "null", JSON_NULL, false },
		};
		size_t i;

		for (i = 0; i < ELEMENTSOF(words); i++)
			if (strncmp(ps->p, words[i].word, strlen(words[i].word)) == 0)
				break;
		if (i == ELEMENTSOF(words))
			return -EINVAL;
		j->type = words[i].type;
		j->boolean = words[i].value;
		ps->p += strlen(words[i].word);
		break;
	}
	default:
		j->type = JSON_NUMBER;
		r = parse_number(ps, &j->text);
		break;
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(j);
	return 0;
}

int json_parse(const char *s, Json **ret)
{
	_cleanup_(json_freep) Json *j = NULL;
	Parser ps = { .p = s };
	int r;

	assert(s);
	assert(ret);

	r = parse_value(&ps, 0, &j);
	if (r < 0)
		return r;
	skip_space(&ps);
	if (*ps.p != '\0')
		return -EINVAL;
	*ret = TAKE_PTR(j);
	return 0;
}

const Json *json_get(const Json *j, const char *key)
{
	if (!j || j->type != JSON_OBJECT)
		return NULL;
	for (size_t i = 0; i < j->n; i++)
		if (streq(j->keys[i], key))
			return j->items[i];
	return NULL;
}

int json_get_u64(const Json *j, uint64_t *ret)
{
	if (!j || j->type != JSON_NUMBER)
		return -EINVAL;
	return parse_u64(j->text, ret);
}
