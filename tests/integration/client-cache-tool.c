/* SPDX-License-Identifier: MIT */
/* libsecurelink-client's link cache driven line by line from stdin, for
 * test_client_cache.py against the real securelinkd:
 *
 *   cache              sl_client_cache(): prints its result
 *   sign TARGET TTL    sl_client_sign() with ttl=TTL: prints the link, or
 *                      "ERR <code>" / "FAIL <errno>"
 *   fork               forks: the parent prints "forked" and exits, the
 *                      child (same SlClient, cache and page) reads on
 *
 * securelink-client-cache-tool SOCKET */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "securelink-client.h"

int main(int argc, char **argv)
{
	SlClient *c = NULL;
	char line[8192];
	int r;

	if (argc != 2) {
		fprintf(stderr, "usage: securelink-client-cache-tool SOCKET\n");
		return 2;
	}
	r = sl_client_connect(argv[1], &c);
	if (r < 0) {
		fprintf(stderr, "connect: %s\n", strerror(-r));
		return 1;
	}
	while (fgets(line, sizeof(line), stdin)) {
		char target[8000];
		long long ttl;

		line[strcspn(line, "\n")] = '\0';
		if (strcmp(line, "cache") == 0)
			printf("%d\n", sl_client_cache(c));
		else if (sscanf(line, "sign %7999s %lld", target, &ttl) == 2) {
			SlSignOptions opt = { .has_ttl = true, .ttl = ttl };
			char *url = NULL;

			r = sl_client_sign(c, target, &opt, &url);
			if (r == 0)
				printf("%s\n", url);
			else if (r == -EREMOTEIO)
				printf("ERR %s\n", sl_error_to_string(sl_client_last_error(c)));
			else
				printf("FAIL %d\n", -r);
			free(url);
		} else if (strcmp(line, "fork") == 0) {
			pid_t pid;

			fflush(stdout);
			pid = fork();
			if (pid < 0)
				printf("FAIL %d\n", errno);
			else if (pid > 0) {
				printf("forked\n");
				fflush(stdout);
				_exit(0);
			}
		} else
			printf("FAIL unknown command\n");
		fflush(stdout);
	}
	sl_client_free(c);
	return 0;
}
