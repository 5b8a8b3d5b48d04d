/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* The output of `nginx -T`: every configuration file nginx read, each after a
 * "# configuration file NAME:" line, parsed into directives as nginx's own
 * tokenizer reads them (words, quotes, escapes, blocks, comments). Includes
 * are not expanded here: each file is parsed on its own, as nginx dumps it. */

/* The most nginx -T output we read: configurations are kilobytes. */
#define NGINX_DUMP_MAX (16U * 1024 * 1024)

typedef struct NginxNode NginxNode;
struct NginxNode {
	char **args; /* args[0] is the directive's name; NULL-terminated */
	size_t n_args;
	const char *file; /* the dump's name of the file it is in */
	unsigned line;
	bool block; /* ended by "{ ... }", not ";" */
	NginxNode **children;
	size_t n_children;
};

typedef struct NginxDumpFile {
	char *name;
	NginxNode root; /* its directives, as the children of an unnamed block */
} NginxDumpFile;

typedef struct NginxDump {
	NginxDumpFile *files; /* in nginx's order: the main file first */
	size_t n_files;
} NginxDump;

/* Parses size bytes of nginx -T output. Returns 0, or -EBADMSG with
 * *ret_error (malloc'd: "FILE:LINE: what", never the text itself) when the
 * input is not what nginx -T writes, -EFBIG over NGINX_DUMP_MAX, -ENOMEM. */
int nginx_dump_parse(const char *buf, size_t size, NginxDump **ret, char **ret_error);
NginxDump *nginx_dump_free(NginxDump *d);
static inline void nginx_dump_freep(NginxDump **d)
{
	nginx_dump_free(*d);
}

/* The file an include of pattern (as written, relative to the main file's
 * directory or absolute, with shell wildcards) names, from index *i on:
 * returns the next match and advances *i past it, or NULL. */
const NginxDumpFile *nginx_dump_next_include(const NginxDump *d, const char *pattern, size_t *i);

/* test_command's argv with its -t made -T (also inside "-tq"), malloc'd.
 * Returns -ENOENT when it has no -t: it is not an nginx test command. */
int nginx_dump_argv(char *const *test_command, char ***ret);
