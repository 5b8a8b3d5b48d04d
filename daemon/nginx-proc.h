/* SPDX-License-Identifier: MIT */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* nginx's processes as /proc and its pid file show them. Nothing here keeps
 * state; every function reads what is there now. */

/* nginx on Linux rewrites its command line to these titles
 * (ngx_setproctitle: "nginx: " and the process's role). */
#define NGINX_MASTER_TITLE "nginx: master process"
#define NGINX_WORKER_TITLE "nginx: worker process"

/* A pid as nginx writes it: decimal, 1..INT_MAX. Returns 0 or -ERANGE/-EINVAL. */
int proc_parse_pid(const char *s, pid_t *ret);
/* Reads "<pid>\n". Returns -ENOENT when the file is missing, -ENODATA when it
 * is empty (what `nginx -t` leaves), -EINVAL when it holds anything else. */
int proc_read_pid_file(const char *path, pid_t *ret);
/* pidfd_open(2) and pidfd_send_signal(2), through glibc or syscall(2). */
int proc_pidfd_open(pid_t pid, unsigned flags);
int proc_pidfd_send_signal(int pidfd, int sig, siginfo_t *info, unsigned flags);
/* Whether pid exists (signal 0). */
bool proc_pid_is_alive(pid_t pid);
/* Whether /proc/PID/cmdline starts with title: 1, 0, or -ENOENT when gone. */
int proc_has_title(pid_t pid, const char *title);
int proc_is_nginx_master(pid_t pid);
/* A worker still taking connections: 1 or 0. */
int proc_is_accepting_worker(pid_t pid);
int proc_read_pgrp_session(pid_t pid, pid_t *ret_pgrp, pid_t *ret_session);
/* Workers of a master that is gone (its session or process group), at most
 * max of them into ret. Returns how many. */
int proc_find_stray_workers(pid_t master, pid_t *ret, size_t max);
/* From /proc/PID/status: whether sig is pending for pid (the thread or the
 * process) and whether pid blocks it now. */
int proc_read_signal(pid_t pid, int sig, bool *ret_pending, bool *ret_blocked);
/* When pid started, in clock ticks after boot (/proc/PID/stat). */
int proc_read_start_time(pid_t pid, uint64_t *ret);
/* The children of pid (CONFIG_PROC_CHILDREN), malloc'd. */
int proc_read_children(pid_t pid, pid_t **ret, size_t *ret_n);
