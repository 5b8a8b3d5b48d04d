/* SPDX-License-Identifier: MIT */
/* An LD_PRELOAD library for the integration tests: it makes securelinkd see
 * what a test cannot cause safely on a shared machine, each only when its
 * environment variable is set.
 *
 * SECURELINK_SHIM_CLOCK_FIFO=PATH: the first timerfd on CLOCK_REALTIME is the
 * FIFO at PATH instead. A byte written to it is a clock change: the read
 * fails with ECANCELED, as the kernel reports a step of CLOCK_REALTIME to a
 * timer armed with TFD_TIMER_CANCEL_ON_SET (timerfd_create(2)). Setting the
 * host's clock would change it for everything else on the machine. Arming
 * it without TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET fails with EINVAL:
 * such a timer would never hear of a clock change.
 *
 * SECURELINK_SHIM_FAIL_SIGPROCMASK=1: sigprocmask(SIG_BLOCK, ...) fails with
 * EINVAL.
 *
 * SECURELINK_SHIM_FAIL_ADD_SIGNAL=N: sd_event_add_signal() for signal N
 * fails with -ENOMEM.
 *
 * SECURELINK_SHIM_FAIL_TIMERS=1: arming any other timerfd fails with EINVAL
 * (sd-event's loop then fails).
 *
 * Always: the daemon's other timerfds are armed here, not by libfaketime,
 * whose timerfd_settime() (0.9.10) turns an absolute CLOCK_REALTIME time
 * under an offset of days into a negative one (EINVAL, and sd-event's loop
 * fails). An absolute time on the faked clock becomes one on the kernel's
 * by the offset between the two, read now. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <systemd/sd-event.h>
#include <unistd.h>

static int clock_fd = -1;
static unsigned char realtime_fds[4096]; /* 1: a CLOCK_REALTIME timerfd */

static void *next(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);

	if (!f)
		abort();
	return f;
}

int timerfd_create(int clockid, int flags)
{
	static int (*real)(int, int);
	const char *fifo = getenv("SECURELINK_SHIM_CLOCK_FIFO");

	if (clockid == CLOCK_REALTIME && fifo && clock_fd < 0) {
		clock_fd = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		return clock_fd;
	}
	int fd;

	if (!real)
		real = next("timerfd_create");
	fd = real(clockid, flags);
	if (fd >= 0 && (size_t)fd < sizeof(realtime_fds))
		realtime_fds[fd] = clockid == CLOCK_REALTIME;
	return fd;
}

int timerfd_settime(int fd, int flags, const struct itimerspec *new, struct itimerspec *old)
{
	const int want = TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET;

	if (fd >= 0 && fd == clock_fd) {
		if ((flags & want) != want) {
			errno = EINVAL;
			return -1;
		}
		return 0;
	}
	if (getenv("SECURELINK_SHIM_FAIL_TIMERS")) {
		errno = EINVAL;
		return -1;
	}
	/* Not the clock watch: it is armed at the end of time and never
	 * expires (moving it would make it expire). */
	if (new && (flags & TFD_TIMER_ABSTIME) && !(flags & TFD_TIMER_CANCEL_ON_SET) && fd >= 0 &&
	    (size_t)fd < sizeof(realtime_fds) && realtime_fds[fd] &&
	    (new->it_value.tv_sec || new->it_value.tv_nsec) &&
	    new->it_value.tv_sec < ((time_t)1 << 40)) {
		struct itimerspec its = *new;
		struct timespec faked, kernel;
		int64_t ns;

		if (clock_gettime(CLOCK_REALTIME, &faked) < 0 ||
		    syscall(SYS_clock_gettime, CLOCK_REALTIME, &kernel) < 0)
			return -1;
		ns = (int64_t)its.it_value.tv_sec * 1000000000 + its.it_value.tv_nsec -
		     ((int64_t)faked.tv_sec - kernel.tv_sec) * 1000000000 -
		     (faked.tv_nsec - kernel.tv_nsec);
		if (ns < 1)
			ns = 1; /* due already; 0 would disarm it */
		its.it_value.tv_sec = ns / 1000000000;
		its.it_value.tv_nsec = ns % 1000000000;
		return (int)syscall(SYS_timerfd_settime, fd, flags, &its, old);
	}
	return (int)syscall(SYS_timerfd_settime, fd, flags, new, old);
}

ssize_t read(int fd, void *buf, size_t count)
{
	static ssize_t (*real)(int, void *, size_t);

	if (!real)
		real = next("read");
	if (fd >= 0 && fd == clock_fd) {
		char drain[64];
		ssize_t n = real(fd, drain, sizeof(drain));

		errno = n > 0 ? ECANCELED : EAGAIN;
		return -1;
	}
	return real(fd, buf, count);
}

/* _FORTIFY_SOURCE turns a read into a fixed-size buffer into this. Builds
 * without it (the sanitizers') have no prototype in <unistd.h>. */
ssize_t __read_chk(int fd, void *buf, size_t count, size_t size);
ssize_t __read_chk(int fd, void *buf, size_t count, size_t size)
{
	static ssize_t (*real)(int, void *, size_t, size_t);

	if (fd >= 0 && fd == clock_fd)
		return read(fd, buf, count);
	if (!real)
		real = next("__read_chk");
	return real(fd, buf, count, size);
}

int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	static int (*real)(int, const sigset_t *, sigset_t *);

	if (how == SIG_BLOCK && getenv("SECURELINK_SHIM_FAIL_SIGPROCMASK")) {
		errno = EINVAL;
		return -1;
	}
	if (!real)
		real = next("sigprocmask");
	return real(how, set, old);
}

int sd_event_add_signal(sd_event *e, sd_event_source **s, int sig, sd_event_signal_handler_t cb,
                        void *userdata)
{
	static int (*real)(sd_event *, sd_event_source **, int, sd_event_signal_handler_t, void *);
	const char *fail = getenv("SECURELINK_SHIM_FAIL_ADD_SIGNAL");

	if (fail && strtol(fail, NULL, 10) == sig)
		return -ENOMEM;
	if (!real)
		real = next("sd_event_add_signal");
	return real(e, s, sig, cb, userdata);
}
