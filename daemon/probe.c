/* SPDX-License-Identifier: MIT */
#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "probe.h"

/* The multi interface, with its sockets and its timer handed to sd-event
 * (as systemd's importd does): the probes share the daemon's single
 * thread with the socket server, and a child process per probe would cost
 * a fork and a binary for a few HTTP requests. */

struct Probe {
	sd_event *event;
	CURLM *multi;
	sd_event_source *timer;
	ProbePlan plan;
	CURL **easy;
	long *status;
	char (*errors)[CURL_ERROR_SIZE];
	struct curl_slist *connect_to;
	/* The io sources curl asked for: curl_multi_cleanup() need not say
	 * CURL_POLL_REMOVE for every one, and none may outlive the probe. */
	sd_event_source **io;
	size_t n_io;
	size_t n_done;
	probe_done_t done;
	void *userdata;
};

static size_t discard(char *ptr, size_t size, size_t n, void *userdata)
{
	return size * n;
}

static void finish(Probe *p)
{
	ProbeResult res = { .verdict = PROBE_PASS, .kid = p->plan.kid, .key_passed = true };
	probe_done_t done = p->done;

	/* The worst verdict decides: fail-open before all else. */
	for (size_t i = 0; i < p->plan.n_requests; i++) {
		ProbeVerdict v = probe_judge(p->plan.requests[i].kind, p->status[i]);
		static const int rank[_PROBE_VERDICT_MAX] = {
			[PROBE_PASS] = 0,        [PROBE_PUBLIC_REFUSED] = 1,
			[PROBE_KEY_REFUSED] = 3, [PROBE_UNREACHABLE] = 2,
			[PROBE_FAIL_OPEN] = 4,
		};

		if (p->plan.requests[i].kind == PROBE_SIGNED && v != PROBE_PASS)
			res.key_passed = false;
		if (rank[v] > rank[res.verdict]) {
			res.verdict = v;
			res.kind = p->plan.requests[i].kind;
			res.url = p->plan.requests[i].url;
			res.status = p->status[i];
			res.error = p->errors[i][0] ? p->errors[i] : "no answer";
		}
	}
	p->done = NULL;
	/* done may free p: nothing touches it afterwards. */
	done(p->userdata, &res);
}

static void check_done(Probe *p)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(p->multi, &left)))
		if (msg->msg == CURLMSG_DONE) {
			for (size_t i = 0; i < p->plan.n_requests; i++)
				if (p->easy[i] == msg->easy_handle) {
					if (msg->data.result == CURLE_OK)
						(void)curl_easy_getinfo(msg->easy_handle,
						                        CURLINFO_RESPONSE_CODE,
						                        &p->status[i]);
					else if (!p->errors[i][0])
						(void)snprintf(
						    p->errors[i], CURL_ERROR_SIZE, "%s",
						    curl_easy_strerror(msg->data.result));
					p->n_done++;
				}
		}
	if (p->done && p->n_done == p->plan.n_requests)
		finish(p);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	Probe *p = userdata;
	int action = 0, running;

	if (revents & EPOLLIN)
		action |= CURL_CSELECT_IN;
	if (revents & EPOLLOUT)
		action |= CURL_CSELECT_OUT;
	if (revents & (EPOLLERR | EPOLLHUP))
		action |= CURL_CSELECT_ERR;
	(void)curl_multi_socket_action(p->multi, fd, action, &running);
	check_done(p);
	return 0;
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userdata, void *socketp)
{
	Probe *p = userdata;
	sd_event_source *io = socketp, **n;
	uint32_t events = 0;

	if (what == CURL_POLL_REMOVE) {
		for (size_t i = 0; io && i < p->n_io; i++)
			if (p->io[i] == io) {
				p->io[i] = p->io[--p->n_io];
				break;
			}
		sd_event_source_disable_unref(io);
		(void)curl_multi_assign(p->multi, fd, NULL);
		return 0;
	}
	if (what & CURL_POLL_IN)
		events |= EPOLLIN;
	if (what & CURL_POLL_OUT)
		events |= EPOLLOUT;
	if (io) {
		if (sd_event_source_set_io_events(io, events) < 0 ||
		    sd_event_source_set_enabled(io, SD_EVENT_ON) < 0)
			return -1;
		return 0;
	}
	n = reallocarray(p->io, p->n_io + 1, sizeof(sd_event_source *));
	if (!n)
		return -1;
	p->io = n;
	if (sd_event_add_io(p->event, &io, fd, events, on_io, p) < 0)
		return -1;
	p->io[p->n_io++] = io;
	(void)curl_multi_assign(p->multi, fd, io);
	return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	Probe *p = userdata;
	int running;

	(void)curl_multi_socket_action(p->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(p);
	return 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userdata)
{
	Probe *p = userdata;
	uint64_t now;

	if (timeout_ms < 0)
		return sd_event_source_set_enabled(p->timer, SD_EVENT_OFF) < 0 ? -1 : 0;
	if (sd_event_now(p->event, CLOCK_MONOTONIC, &now) < 0)
		return -1;
	/* 0 means "as soon as possible", from the loop, never from here. */
	if (sd_event_source_set_time(p->timer, now + (uint64_t)timeout_ms * USEC_PER_MSEC) < 0 ||
	    sd_event_source_set_enabled(p->timer, SD_EVENT_ONESHOT) < 0)
		return -1;
	return 0;
}

Probe *probe_free(Probe *p)
{
	if (!p)
		return NULL;
	for (size_t i = 0; p->easy && i < p->plan.n_requests; i++)
		if (p->easy[i]) {
			(void)curl_multi_remove_handle(p->multi, p->easy[i]);
			curl_easy_cleanup(p->easy[i]);
		}
	if (p->multi)
		(void)curl_multi_cleanup(p->multi);
	for (size_t i = 0; i < p->n_io; i++)
		sd_event_source_disable_unref(p->io[i]);
	free(p->io);
	sd_event_source_disable_unref(p->timer);
	curl_slist_free_all(p->connect_to);
	free(p->easy);
	free(p->status);
	free(p->errors);
	probe_plan_done(&p->plan);
	sd_event_unref(p->event);
	free(p);
	return NULL;
}

static void probe_freep(Probe **p)
{
	probe_free(*p);
}

int probe_start(sd_event *e, ProbePlan *plan, bool loopback, usec_t timeout, probe_done_t done,
                void *userdata, Probe **ret)
{
	_cleanup_(probe_freep) Probe *p = NULL;
	static bool initialized;
	size_t n = plan->n_requests;
	int r;

	if (!initialized) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			probe_plan_done(plan);
			return -ENOMEM;
		}
		initialized = true;
	}
	p = calloc(1, sizeof(Probe));
	if (!p) {
		probe_plan_done(plan);
		return -ENOMEM;
	}
	p->plan = *plan;
	*plan = (ProbePlan){};
	p->event = sd_event_ref(e);
	p->done = done;
	p->userdata = userdata;
	p->easy = calloc(n ? n : 1, sizeof(CURL *));
	p->status = calloc(n ? n : 1, sizeof(long));
	p->errors = calloc(n ? n : 1, CURL_ERROR_SIZE);
	p->multi = curl_multi_init();
	if (!p->easy || !p->status || !p->errors || !p->multi)
		return -ENOMEM;
	/* Every host and port to 127.0.0.1 on the same port: Host and SNI
	 * stay base_url's, so nginx picks the server {} that serves links. */
	if (loopback) {
		p->connect_to = curl_slist_append(NULL, "::127.0.0.1:");
		if (!p->connect_to)
			return -ENOMEM;
	}
	/* Accuracy 0 would be sd-event's default of 250 ms: curl's timeouts
	 * (0 = at once) would fire a quarter second late, and every rotation,
	 * whose key waits for a probe, with them. */
	r = sd_event_add_time(e, &p->timer, CLOCK_MONOTONIC, UINT64_MAX, USEC_PER_MSEC, on_timer,
	                      p);
	if (r < 0)
		return r;
	(void)sd_event_source_set_enabled(p->timer, SD_EVENT_OFF);
	if (curl_multi_setopt(p->multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
	    curl_multi_setopt(p->multi, CURLMOPT_SOCKETDATA, p) != CURLM_OK ||
	    curl_multi_setopt(p->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
	    curl_multi_setopt(p->multi, CURLMOPT_TIMERDATA, p) != CURLM_OK)
		return -ENOMEM;

	for (size_t i = 0; i < n; i++) {
		CURL *c = curl_easy_init();

		if (!c)
			return -ENOMEM;
		p->easy[i] = c;
		if (curl_easy_setopt(c, CURLOPT_URL, p->plan.requests[i].url) != CURLE_OK ||
		    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
		    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
		    /* The environment's proxy would not be the nginx we probe. */
		    curl_easy_setopt(c, CURLOPT_PROXY, "") != CURLE_OK ||
		    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
		    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout / USEC_PER_MSEC)) !=
		        CURLE_OK ||
		    /* The question is nginx's verdict on a path, asked of the
		     * server we are configured for, not its identity: a
		     * self-signed or internal certificate must not hide a
		     * fail-open. The signed probe names a random missing file
		     * and expires in a minute. */
		    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L) != CURLE_OK ||
		    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L) != CURLE_OK ||
		    curl_easy_setopt(c, CURLOPT_USERAGENT, "securelinkd-probe") != CURLE_OK ||
		    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard) != CURLE_OK ||
		    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, p->errors[i]) != CURLE_OK ||
		    (p->connect_to &&
		     curl_easy_setopt(c, CURLOPT_CONNECT_TO, p->connect_to) != CURLE_OK))
			return -EINVAL;
		if (curl_multi_add_handle(p->multi, c) != CURLM_OK)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(p);
	return 0;
}
