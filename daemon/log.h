/* SPDX-License-Identifier: MIT */
#pragma once

#include <syslog.h>

#include "util.h"

/* Logging for securelinkd: to the journal (with structured fields) when
 * systemd connected stderr to it or the journal socket is there and stderr is
 * not a terminal, else one line per message on stderr. Library code does not
 * log; the daemon logs once, where an error is handled. */

/* MESSAGE_IDs of the events an admin may want to find in the journal
 * (journalctl MESSAGE_ID=...). */
#define SL_MESSAGE_KEY_PUBLISHED    "5b0f3c1e2a6d4e7f9b8c1d2e3f4a5b61"
#define SL_MESSAGE_KEY_ACTIVATED    "5b0f3c1e2a6d4e7f9b8c1d2e3f4a5b62"
#define SL_MESSAGE_KEY_DROPPED      "5b0f3c1e2a6d4e7f9b8c1d2e3f4a5b63"
#define SL_MESSAGE_NGINX_FAILED     "5b0f3c1e2a6d4e7f9b8c1d2e3f4a5b64"
#define SL_MESSAGE_KEY_IMPORTED     "5b0f3c1e2a6d4e7f9b8c1d2e3f4a5b65"
#define SL_MESSAGE_KEYRING_FALLBACK "5b0f3c1e2a6d4e7f9b8c1d2e3f4a5b66"
/* A private path answered without a token: links protect nothing. */
#define SL_MESSAGE_FAIL_OPEN "5b0f3c1e2a6d4e7f9b8c1d2e3f4a5b67"

void log_open(void);
void log_set_max_level(int level);

/* Logs at priority; message_id may be NULL. Returns -abs(error) when error is
 * non-zero (so `return log_error_errno(r, ...)` works), else 0. %m in format
 * prints strerror(error). */
int log_internal(int priority, int error, const char *message_id, const char *format, ...)
    _printf_(4, 5);

#define log_debug(...)            log_internal(LOG_DEBUG, 0, NULL, __VA_ARGS__)
#define log_info(...)             log_internal(LOG_INFO, 0, NULL, __VA_ARGS__)
#define log_notice(...)           log_internal(LOG_NOTICE, 0, NULL, __VA_ARGS__)
#define log_warning(...)          log_internal(LOG_WARNING, 0, NULL, __VA_ARGS__)
#define log_error(...)            log_internal(LOG_ERR, 0, NULL, __VA_ARGS__)
#define log_error_errno(e, ...)   log_internal(LOG_ERR, (e), NULL, __VA_ARGS__)
#define log_warning_errno(e, ...) log_internal(LOG_WARNING, (e), NULL, __VA_ARGS__)
#define log_event(prio, id, ...)  log_internal((prio), 0, (id), __VA_ARGS__)
