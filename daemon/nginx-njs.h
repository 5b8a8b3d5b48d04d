/* SPDX-License-Identifier: MIT */
#pragma once

#include "config.h"

/* The main nginx configuration nginx -t reads: test_command's "-c FILE"
 * (relative to its "-p PREFIX"), else NGINX_NJS_DEFAULT_CONF. */
#define NGINX_NJS_DEFAULT_CONF "/etc/nginx/nginx.conf"
#define NGINX_NJS_MODULE       "ngx_http_js_module.so"
#define NGINX_NJS_PACKAGE      "libnginx-mod-http-js"

/* With algorithm = hmac-sha256: whether nginx loads its njs module, i.e.
 * whether the main configuration, or a file it includes at its top level
 * (Debian's modules-enabled/ files), has a load_module of an existing
 * ngx_http_js_module.so. nginx -V lists static modules only, and Debian
 * builds njs as a dynamic one. Returns 0 (also for md5), or -ENOPKG with
 * *ret_error one malloc'd line naming the file, the package and the fix. */
int nginx_njs_check(const Config *c, char **ret_error);
