/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "nginx-proc.h"

/* What the reload confirmation reads of nginx's master, read here of this
 * process, whose signal state the test sets with sigprocmask(2) and
 * raise(3); the kernel's /proc is the known answer. */
static void test_read_signal_sees_pending_and_blocked(void **state)
{
	sigset_t set, old;
	bool pending, blocked;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	assert_int_equal(sigprocmask(SIG_BLOCK, &set, &old), 0);

	assert_int_equal(proc_read_signal(getpid(), SIGHUP, &pending, &blocked), 0);
	assert_false(pending);
	assert_true(blocked);
	/* Another signal's bits are not SIGHUP's. */
	assert_int_equal(proc_read_signal(getpid(), SIGUSR2, &pending, &blocked), 0);
	assert_false(pending);
	assert_false(blocked);

	assert_int_equal(kill(getpid(), SIGHUP), 0); /* the process's (ShdPnd) */
	assert_int_equal(proc_read_signal(getpid(), SIGHUP, &pending, &blocked), 0);
	assert_true(pending);
	assert_true(blocked);

	/* Taken: sigwait() dequeues it without a handler. */
	int sig = 0;
	assert_int_equal(sigwait(&set, &sig), 0);
	assert_int_equal(sig, SIGHUP);
	assert_int_equal(proc_read_signal(getpid(), SIGHUP, &pending, &blocked), 0);
	assert_false(pending);

	assert_int_equal(sigprocmask(SIG_SETMASK, &old, NULL), 0);
	assert_int_equal(proc_read_signal(getpid(), SIGHUP, &pending, &blocked), 0);
	assert_false(blocked);
}

static void test_read_start_time_orders_parent_and_child(void **state)
{
	uint64_t parent, child, again;
	pid_t pid;
	int fds[2];
	char c;

	assert_int_equal(proc_read_start_time(getpid(), &parent), 0);
	assert_int_equal(proc_read_start_time(getpid(), &again), 0);
	assert_true(parent == again);
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		_exit(read(fds[0], &c, 1) == 1 ? 0 : 1);
	}
	assert_int_equal(proc_read_start_time(pid, &child), 0);
	assert_true(child >= parent);
	assert_int_equal(write(fds[1], "x", 1), 1);
	close(fds[0]);
	close(fds[1]);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	/* Gone: the process's entry with it. */
	assert_int_equal(proc_read_start_time(pid, &child), -ENOENT);
	assert_int_equal(proc_read_signal(pid, SIGHUP, &(bool){ false }, &(bool){ false }),
	                 -ENOENT);
}

static void test_a_zombie_is_no_master_but_gone(void **state)
{
	/* A master killed with SIGKILL: a zombie, its title empty, until its
	 * parent reaps it. "Not an nginx master" would send the operator to
	 * the pid directive; it is gone. */
	siginfo_t si = {};
	pid_t pid;
	int fds[2];
	char c;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(read(fds[0], &c, 1) == 1 ? 0 : 1);
	/* Alive, another program's title. */
	assert_int_equal(proc_is_nginx_master(pid), 0);
	assert_int_equal(write(fds[1], "x", 1), 1);
	close(fds[0]);
	close(fds[1]);
	/* Exited, not reaped (WNOWAIT). */
	assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
	assert_int_equal(si.si_pid, pid);
	assert_int_equal(proc_is_nginx_master(pid), -ENOENT);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	assert_int_equal(proc_is_nginx_master(pid), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_signal_sees_pending_and_blocked),
		cmocka_unit_test(test_read_start_time_orders_parent_and_child),
		cmocka_unit_test(test_a_zombie_is_no_master_but_gone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
