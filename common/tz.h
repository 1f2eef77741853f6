/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tz: a time zone's UTC offsets, for times written in logs without one
 * (RFC 3164's "Mmm dd hh:mm:ss" is the sender's local time).
 *
 * A zone is loaded once from a TZif file (RFC 8536, as tzdata installs
 * them under /usr/share/zoneinfo) or from a POSIX TZ rule such as
 * "EST5EDT,M3.2.0,M11.1.0"; after that every lookup is arithmetic on
 * memory it owns. Unlike localtime_r and mktime, which read the process's
 * TZ and global state, any number of zones can be used at once, from any
 * thread.
 */
#ifndef LOGFERRY_TZ_H
#define LOGFERRY_TZ_H

#include <stdint.h>

struct tz;

/*
 * Loads a zone. name: an IANA name ("America/New_York", looked up under
 * $TZDIR, else /usr/share/zoneinfo), an absolute path of a TZif file, or
 * a POSIX TZ rule; NULL means the process's local zone as the C library
 * sees it: $TZ when set (an empty TZ is UTC), else /etc/localtime, else
 * UTC. Returns 0 with *out owned by the caller (tz_free), or -ENOENT (no
 * such zone), -EINVAL (a file that is not TZif, a malformed rule or a
 * name with ".."), -ENOMEM, or another negative errno of reading the file.
 */
int tz_load(const char *name, struct tz **out);

/* Frees z. NULL is fine. */
void tz_free(struct tz *z);

/* What z was loaded from ("America/New_York", "/etc/localtime", "UTC", ...). */
const char *tz_name(const struct tz *z);

/* Seconds to add to UTC to get local time at t (seconds since the epoch). */
int32_t tz_offset(const struct tz *z, int64_t t);

/*
 * The UTC time (seconds since the epoch) of the local wall-clock time
 * `local` (written as seconds since the epoch as if it were UTC). A time
 * that occurs twice (the hour repeated when DST ends) gives the one
 * closer to near; a time that never occurs (skipped when DST starts) is
 * read with the offset before the change, as mktime does.
 */
int64_t tz_utc(const struct tz *z, int64_t local, int64_t near);

#endif
