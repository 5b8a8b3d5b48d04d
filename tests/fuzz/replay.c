/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"
#include "fuzz.h"

/* Runs a harness over every file of the given corpus directories (or over
 * files named directly), the way libFuzzer replays a corpus, so the seeds and
 * every crash found so far are a normal meson test in builds without
 * libFuzzer. An empty corpus is a failure: a replay of nothing proves nothing. */

#define INPUT_MAX (1024U * 1024U)

static int run_file(const char *path)
{
	char *data = NULL;
	uint8_t *exact;
	size_t size = 0;
	int r;

	r = read_file(path, INPUT_MAX, &data, &size);
	if (r < 0) {
		fprintf(stderr, "replay: cannot read %s: %s\n", path, strerror(-r));
		return r;
	}
	/* libFuzzer hands over exactly size bytes: copy out of read_file()'s
	 * NUL-terminated buffer so that ASan sees any read past the end. */
	exact = malloc(size ? size : 1);
	if (!exact) {
		free(data);
		return -ENOMEM;
	}
	memcpy(exact, data, size);
	free(data);
	(void)LLVMFuzzerTestOneInput(exact, size);
	free(exact);
	return 0;
}

static int run_dir(const char *dir, unsigned *n)
{
	struct dirent **entries = NULL;
	int count, r = 0;

	count = scandir(dir, &entries, NULL, alphasort);
	if (count < 0) {
		fprintf(stderr, "replay: cannot read directory %s: %s\n", dir, strerror(errno));
		return -errno;
	}
	for (int i = 0; i < count; i++) {
		char *path = NULL;
		struct stat st;

		if (entries[i]->d_name[0] != '.' &&
		    asprintf(&path, "%s/%s", dir, entries[i]->d_name) >= 0 &&
		    stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			if (run_file(path) < 0)
				r = -EIO;
			else
				(*n)++;
		}
		free(path);
		free(entries[i]);
	}
	free(entries);
	return r;
}

int main(int argc, char *argv[])
{
	unsigned n = 0;
	int failed = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR|FILE...\n", argv[0]);
		return EXIT_FAILURE;
	}
	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			failed = 1;
		} else if (S_ISDIR(st.st_mode)) {
			if (run_dir(argv[i], &n) < 0)
				failed = 1;
		} else if (run_file(argv[i]) < 0)
			failed = 1;
		else
			n++;
	}
	printf("replayed %u inputs\n", n);
	if (n == 0) {
		fprintf(stderr, "replay: no inputs found\n");
		return EXIT_FAILURE;
	}
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
