/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>

#include "log.h"

static int max_level = LOG_INFO;
static bool to_journal;

void log_set_max_level(int level)
{
	max_level = level;
}

/* True when stderr is the journal stream systemd set up for us: the device
 * and inode in $JOURNAL_STREAM match fd 2. */
static bool stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return st.st_dev == (dev_t)dev && st.st_ino == (ino_t)ino;
}

void log_open(void)
{
	to_journal = stderr_is_journal();
}

int log_internal(int priority, int error, const char *message_id, const char *format, ...)
{
	char buf[2048];
	va_list ap;
	int saved = errno;

	if (error < 0)
		error = -error;
	if (priority > max_level)
		return -error;

	/* %m must print the error we were given, not whatever errno is now. */
	errno = error;
	va_start(ap, format);
	vsnprintf(buf, sizeof(buf), format, ap);
	va_end(ap);

	if (to_journal) {
		if (message_id)
			sd_journal_send("MESSAGE=%s", buf, "PRIORITY=%i", priority, "MESSAGE_ID=%s",
			                message_id, "SYSLOG_IDENTIFIER=securelinkd",
			                error ? "ERRNO=%i" : NULL, error, NULL);
		else
			sd_journal_send("MESSAGE=%s", buf, "PRIORITY=%i", priority,
			                "SYSLOG_IDENTIFIER=securelinkd", error ? "ERRNO=%i" : NULL,
			                error, NULL);
	} else {
		fprintf(stderr, "securelinkd: %s\n", buf);
	}

	errno = saved;
	return -error;
}
