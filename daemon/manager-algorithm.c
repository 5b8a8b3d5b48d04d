/* SPDX-License-Identifier: MIT */
#include "algorithm.h"
#include "log.h"
#include "manager-algorithm.h"
#include "nginx-njs.h"

unsigned manager_algorithms(const Manager *m)
{
	return algorithm_state_checked(&m->alg, now_realtime()) |
	       LINK_ALGORITHM_BIT(m->config->algorithm) |
	       LINK_ALGORITHM_BIT(m->signing_config->algorithm);
}

static void persist(Manager *m)
{
	int r = algorithm_state_save(m->config->state_directory, &m->alg);

	if (r < 0)
		log_warning_errno(r,
		                  "Failed to save %s/" ALGORITHM_STATE_FILE
		                  ": %m; after a restart nginx may stop checking links of the "
		                  "previous algorithm early, ignoring.",
		                  m->config->state_directory);
}

/* Links of the previous algorithm have all expired: nginx checks them no
 * more. Returns the next time to look, or USEC_INFINITY. */
usec_t manager_algorithm_expire(Manager *m, usec_t now)
{
	if (m->alg.previous_until == 0)
		return USEC_INFINITY;
	if (now < m->alg.previous_until)
		return m->alg.previous_until;
	log_info("The last %s links have expired; nginx checks %s links only from now on",
	         link_algorithm_to_string(m->alg.previous),
	         link_algorithm_to_string(m->alg.signing));
	m->alg.previous_until = 0;
	persist(m);
	m->rotation.sync_needed = true;
	return USEC_INFINITY;
}

/* How long links signed until now under a or b may still be checked: the
 * longer of the two, as links of the old configuration's max_link_ttl may
 * be out there when the new one lowers it. */
static usec_t algorithm_live(const Config *a, const Config *b)
{
	usec_t ttl = a->max_link_ttl > b->max_link_ttl ? a->max_link_ttl : b->max_link_ttl;
	usec_t skew = a->clock_skew > b->clock_skew ? a->clock_skew : b->clock_skew;

	return ttl + skew;
}

/* Whether nginx may have checked links of a (hmac-sha256 needs njs):
 * 1 yes, 0 no, or -ENOMEM. */
static int njs_possible(const Config *c, LinkAlgorithm a)
{
	_cleanup_(config_freep) Config *copy = NULL;
	_cleanup_free_ char *error = NULL;
	int r;

	if (a != LINK_ALGORITHM_HMAC_SHA256 || c->algorithm == a)
		return 1;
	r = config_copy(c, &copy);
	if (r < 0)
		return log_error_errno(r, "Failed to copy the configuration: %m");
	copy->algorithm = a;
	return nginx_njs_check(copy, &error) != -ENOPKG;
}

/* At start: a configuration whose algorithm differs from the one that
 * signed before the restart signs in that one until nginx is confirmed to
 * check both (the running nginx has the old snippets until the start's
 * reload), then switches as a SIGHUP does. fresh: a first start (no key
 * yet), where no link of any algorithm can live. */
int manager_algorithm_start(Manager *m, bool fresh)
{
	AlgorithmState s;
	usec_t now = now_realtime();
	int r;

	r = algorithm_state_load(m->config->state_directory, &s);
	if (r == -ENOENT || fresh)
		s = (AlgorithmState){ .signing =
			                  fresh ? m->config->algorithm : LINK_ALGORITHM_MD5 };
	else if (r < 0) {
		/* Which algorithm signed before is unknown: links of the one not
		 * configured may live. The file is rewritten below. */
		LinkAlgorithm other = m->config->algorithm == LINK_ALGORITHM_MD5
		                          ? LINK_ALGORITHM_HMAC_SHA256
		                          : LINK_ALGORITHM_MD5;
		int k = njs_possible(m->config, other);

		if (k < 0)
			return k;
		/* An nginx that cannot load njs never checked hmac-sha256 links. */
		s = k > 0 ? algorithm_switch(algorithm_live(m->config, m->config), other,
		                             m->config->algorithm, now)
		          : (AlgorithmState){ .signing = m->config->algorithm };
		log_warning_errno(r,
		                  "Failed to read %s/" ALGORITHM_STATE_FILE
		                  ": %m; %s %s %s The file is rewritten now; if this repeats, "
		                  "make it readable by securelinkd, ignoring.",
		                  m->config->state_directory,
		                  k > 0 ? "nginx checks" : "nginx cannot load njs, so no",
		                  link_algorithm_to_string(other),
		                  k > 0 ? "links too for max_link_ttl + clock_skew, in case they "
		                          "were signed before."
		                        : "link was checked here.");
	}
	if (s.signing != m->config->algorithm) {
		Config *c;

		log_info("The link algorithm changed from %s to %s; links are signed in %s until "
		         "nginx is confirmed to check %s links, and nginx checks %s links until "
		         "the last has expired",
		         link_algorithm_to_string(s.signing),
		         link_algorithm_to_string(m->config->algorithm),
		         link_algorithm_to_string(s.signing),
		         link_algorithm_to_string(m->config->algorithm),
		         link_algorithm_to_string(s.signing));
		r = config_copy(m->config, &c);
		if (r < 0)
			return log_error_errno(r, "Failed to copy the configuration: %m");
		c->algorithm = s.signing;
		m->signing_config = c;
	}
	m->alg = s;
	persist(m);
	return 0;
}

void manager_algorithm_confirm(Manager *m)
{
	if (m->signing_config->algorithm == m->config->algorithm)
		return;
	m->alg =
	    algorithm_switch(algorithm_live(m->signing_config, m->config),
	                     m->signing_config->algorithm, m->config->algorithm, now_realtime());
	persist(m);
}
