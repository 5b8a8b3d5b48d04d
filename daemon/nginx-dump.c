/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nginx-dump.h"
#include "util.h"

/* nginx -T writes this before each file, then the file, then a newline. */
#define MARKER "# configuration file "
/* Deeper nesting than any configuration has; bounds the parser's stack. */
#define DEPTH_MAX 64

static void node_done(NginxNode *n)
{
	strv_free(n->args);
	for (size_t i = 0; i < n->n_children; i++) {
		node_done(n->children[i]);
		free(n->children[i]);
	}
	free(n->children);
}

NginxDump *nginx_dump_free(NginxDump *d)
{
	if (!d)
		return NULL;
	for (size_t i = 0; i < d->n_files; i++) {
		free(d->files[i].name);
		node_done(&d->files[i].root);
	}
	free(d->files);
	free(d);
	return NULL;
}

typedef struct Parser {
	const char *p, *end;
	const char *file;
	unsigned line;
	char **error;
	NginxNode *stack[DEPTH_MAX + 1];
	size_t depth;
	char **args; /* the directive being read */
	size_t n_args;
} Parser;

_printf_(2, 3) static int parser_fail(Parser *ps, const char *format, ...)
{
	_cleanup_free_ char *what = NULL;
	va_list ap;
	int r;

	va_start(ap, format);
	r = vasprintf(&what, format, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	if (asprintf(ps->error, "%s:%u: %s", ps->file, ps->line, what) < 0)
		return -ENOMEM;
	return -EBADMSG;
}

static int parser_add_arg(Parser *ps, const char *s, size_t n)
{
	char **l, *arg = malloc(n + 1);
	size_t k = 0;

	if (!arg)
		return -ENOMEM;
	/* nginx's own unescaping of a token. */
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\\' && i + 1 < n) {
			char c = s[i + 1];

			if (c == '"' || c == '\'' || c == '\\') {
				arg[k++] = c;
				i++;
				continue;
			}
			if (c == 't' || c == 'r' || c == 'n') {
				arg[k++] = c == 't' ? '\t' : c == 'r' ? '\r' : '\n';
				i++;
				continue;
			}
		}
		arg[k++] = s[i];
	}
	arg[k] = '\0';
	l = reallocarray(ps->args, ps->n_args + 2, sizeof(char *));
	if (!l) {
		free(arg);
		return -ENOMEM;
	}
	ps->args = l;
	l[ps->n_args++] = arg;
	l[ps->n_args] = NULL;
	return 0;
}

/* Ends the directive being read: a child of the innermost block. */
static int parser_end_directive(Parser *ps, unsigned line, bool block, NginxNode **ret)
{
	NginxNode *parent = ps->stack[ps->depth], *n, **l;

	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	l = reallocarray(parent->children, parent->n_children + 1, sizeof(NginxNode *));
	if (!l) {
		free(n);
		return -ENOMEM;
	}
	parent->children = l;
	l[parent->n_children++] = n;
	n->args = TAKE_PTR(ps->args);
	n->n_args = ps->n_args;
	ps->n_args = 0;
	n->file = ps->file;
	n->line = line;
	n->block = block;
	if (ret)
		*ret = n;
	return 0;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* One file's text, as ngx_conf_read_token() reads it. */
static int parse_file(Parser *ps, NginxNode *root)
{
	unsigned line = 0; /* where the directive being read starts */
	int r;

	ps->depth = 0;
	ps->stack[0] = root;
	while (ps->p < ps->end) {
		char c = *ps->p;

		if (c == '\n') {
			ps->line++;
			ps->p++;
			continue;
		}
		if (is_space(c)) {
			ps->p++;
			continue;
		}
		if (c == '#') {
			while (ps->p < ps->end && *ps->p != '\n')
				ps->p++;
			continue;
		}
		if (c == ';' || c == '{') {
			NginxNode *n;

			if (ps->n_args == 0)
				return parser_fail(ps, "unexpected \"%c\"", c);
			if (c == '{' && ps->depth == DEPTH_MAX)
				return parser_fail(ps, "blocks nested deeper than %d", DEPTH_MAX);
			r = parser_end_directive(ps, line, c == '{', &n);
			if (r < 0)
				return r;
			if (c == '{')
				ps->stack[++ps->depth] = n;
			ps->p++;
			continue;
		}
		if (c == '}') {
			if (ps->n_args > 0)
				return parser_fail(ps,
				                   "unexpected \"}\": a directive lacks its \";\"");
			if (ps->depth == 0)
				return parser_fail(ps, "unexpected \"}\"");
			ps->depth--;
			ps->p++;
			continue;
		}

		if (ps->n_args == 0)
			line = ps->line;
		if (c == '"' || c == '\'') {
			const char *start = ++ps->p;

			while (ps->p < ps->end && *ps->p != c) {
				if (*ps->p == '\n')
					ps->line++;
				if (*ps->p == '\\' && ps->p + 1 < ps->end) {
					ps->p++;
					if (*ps->p == '\n')
						ps->line++;
				}
				ps->p++;
			}
			if (ps->p >= ps->end)
				return parser_fail(ps, "unexpected end of file, expecting %c", c);
			r = parser_add_arg(ps, start, (size_t)(ps->p - start));
			if (r < 0)
				return r;
			ps->p++;
			/* nginx wants a separator after a closing quote; ')' ends
			 * an if's condition and starts a word of its own. */
			if (ps->p < ps->end && !is_space(*ps->p) && !strchr(";{)", *ps->p))
				/* Not the byte itself: it may be a secret's. */
				return parser_fail(ps, "a quoted word runs into the next one");
			continue;
		}

		/* A word: up to a space, ';' or '{'. '}' and quotes inside it
		 * are its own, "${" starts a variable name, '\' escapes. */
		{
			const char *start = ps->p;
			bool dollar = false;

			while (ps->p < ps->end) {
				c = *ps->p;
				if (c == '\\' && ps->p + 1 < ps->end) {
					if (ps->p[1] == '\n')
						ps->line++;
					ps->p += 2;
					dollar = false;
					continue;
				}
				if (is_space(c) || c == ';' || (c == '{' && !dollar))
					break;
				dollar = c == '$';
				ps->p++;
			}
			r = parser_add_arg(ps, start, (size_t)(ps->p - start));
			if (r < 0)
				return r;
		}
	}
	if (ps->n_args > 0 || ps->depth > 0)
		return parser_fail(ps, "unexpected end of file, expecting \";\" or \"}\"");
	return 0;
}

/* Whether the line at p (up to end) is a marker; its name's bounds. */
static bool is_marker(const char *p, const char *end, const char **ret_name, size_t *ret_len,
                      const char **ret_next)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	const char *eol = nl ? nl : end;

	if ((size_t)(eol - p) < STRLEN(MARKER) + 2 || memcmp(p, MARKER, STRLEN(MARKER)) != 0 ||
	    eol[-1] != ':')
		return false;
	*ret_name = p + STRLEN(MARKER);
	*ret_len = (size_t)(eol - 1 - *ret_name);
	*ret_next = nl ? nl + 1 : end;
	return true;
}

/* The start of the next marker line at or after p, or end. */
static const char *next_marker(const char *p, const char *end)
{
	const char *name, *next;
	size_t len;

	while (p < end) {
		const char *nl;

		if (is_marker(p, end, &name, &len, &next))
			return p;
		nl = memchr(p, '\n', (size_t)(end - p));
		p = nl ? nl + 1 : end;
	}
	return end;
}

int nginx_dump_parse(const char *buf, size_t size, NginxDump **ret, char **ret_error)
{
	_cleanup_(nginx_dump_freep) NginxDump *d = NULL;
	const char *p = buf, *end = buf + size;
	Parser ps = { .error = ret_error };
	int r = 0;

	*ret_error = NULL;
	if (size > NGINX_DUMP_MAX)
		return -EFBIG;
	if (memchr(buf, '\0', size))
		return asprintf(ret_error, "nginx -T output holds a NUL byte") < 0 ? -ENOMEM
		                                                                   : -EBADMSG;
	while (p < end && is_space(*p))
		p++;
	if (p == end)
		return asprintf(ret_error, "nginx -T printed nothing") < 0 ? -ENOMEM : -EBADMSG;

	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	while (p < end) {
		const char *name, *next;
		NginxDumpFile *f;
		size_t len;

		if (!is_marker(p, end, &name, &len, &next))
			return asprintf(ret_error, "nginx -T output does not start with \"%s\"",
			                MARKER "FILE:") < 0
			           ? -ENOMEM
			           : -EBADMSG;
		f = reallocarray(d->files, d->n_files + 1, sizeof(*f));
		if (!f)
			return -ENOMEM;
		d->files = f;
		f = &d->files[d->n_files];
		*f = (NginxDumpFile){};
		f->name = strndup(name, len);
		if (!f->name)
			return -ENOMEM;
		d->n_files++;

		ps.p = next;
		ps.end = next_marker(next, end);
		ps.file = f->name;
		ps.line = 1;
		r = parse_file(&ps, &f->root);
		strv_free(ps.args);
		ps.args = NULL;
		ps.n_args = 0;
		if (r < 0)
			return r;
		p = ps.end;
	}
	*ret = TAKE_PTR(d);
	return 0;
}

const NginxDumpFile *nginx_dump_next_include(const NginxDump *d, const char *pattern, size_t *i)
{
	_cleanup_free_ char *full = NULL;

	if (d->n_files == 0)
		return NULL;
	if (pattern[0] != '/') {
		/* nginx resolves it against the main file's directory. */
		const char *main = d->files[0].name, *slash = strrchr(main, '/');

		if (asprintf(&full, "%.*s/%s", slash ? (int)(slash - main) : 1, slash ? main : ".",
		             pattern) < 0)
			return NULL;
		pattern = full;
	}
	for (; *i < d->n_files; (*i)++)
		if (fnmatch(pattern, d->files[*i].name, FNM_PATHNAME) == 0)
			return &d->files[(*i)++];
	return NULL;
}

int nginx_dump_argv(char *const *test_command, char ***ret)
{
	_cleanup_strv_free_ char **l = NULL;
	size_t n = strv_length(test_command);
	bool found = false;

	l = calloc(n + 1, sizeof(char *));
	if (!l)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		l[i] = strdup(test_command[i]);
		if (!l[i])
			return -ENOMEM;
	}
	/* nginx's options: letters after one '-', where -c -e -g -p -s take
	 * the rest of the word or the next word as their value. */
	for (size_t i = 1; i < n && !found; i++) {
		if (l[i][0] != '-')
			continue;
		for (char *c = l[i] + 1; *c; c++) {
			if (strchr("cegps", *c)) {
				if (c[1] == '\0')
					i++;
				break;
			}
			if (*c == 't' || *c == 'T') {
				*c = 'T';
				found = true;
				break;
			}
		}
	}
	if (!found)
		return -ENOENT;
	*ret = TAKE_PTR(l);
	return 0;
}
