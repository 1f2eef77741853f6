/* SPDX-License-Identifier: Apache-2.0 */
/*
 * syslog_parse: one syslog message into a struct parsed.
 *
 * Understands RFC 5424 (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`) and
 * RFC 3164 as BSD syslog, rsyslog, glibc and util-linux logger send it
 * (`<PRI>Mmm dd hh:mm:ss HOST TAG: MSG`, the host left out on local
 * sockets), and the lines of /var/log/syslog files, which have no PRI and
 * either the traditional timestamp or rsyslog's RFC 3339 one.
 *
 * Fields: facility, facility_name, severity, severity_name (only when there
 * is a PRI), hostname, app_name, procid, msgid (RFC 5424), one
 * `sd.<SD-ID>.<PARAM-NAME>` per structured data parameter, and message (the
 * MSG part, UTF-8 BOM and trailing CR/LF/NUL removed). Values that appear
 * in the line are EVENT_SLICE; facility_name and severity_name are
 * EVENT_TEXT of static strings; SD keys, and SD values with escapes, are
 * EVENT_TEXT in out->scratch.
 *
 * Lenient where rsyslog is (its testbench's date and rfc5424 cases):
 * spaces between the PRI and the timestamp, a day without its padding
 * ("Mar 7"), a year after the day ("Mar 7 2008 19:06:53"), a colon after
 * the time, spaces around "=" and before "]" in structured data.
 *
 * Time: RFC 5424 and RFC 3339 timestamps carry their offset. The
 * traditional `Mmm dd hh:mm:ss` has no zone: it is the sender's local
 * time, read in the zone the caller gives (DST included); and when it has
 * no year, in the year that puts it closest to now.
 */
#ifndef LOGFERRY_SYSLOG_PARSE_H
#define LOGFERRY_SYSLOG_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "common/parser.h"
#include "common/tz.h"

/*
 * Parses one syslog message (RFC 5424, or RFC 3164 as sent by BSD syslog,
 * rsyslog, util-linux logger, and as written to /var/log/syslog files).
 * now_ns: receive time, used for RFC 3164's year-less timestamps (pick the
 * year that puts the time closest to now, so a December message read in
 * January gets last year). zone: the time zone of RFC 3164 timestamps
 * (NULL: UTC); it must outlive the call. Resets out first; slices in out point into
 * msg, which must outlive them. Returns 0, or -EINVAL with out->error set
 * (a static string; the fields parsed so far are then meaningless). A
 * message whose PRI was read is never refused whole: when what follows
 * cannot be read, it returns 0 with the PRI's fields, the rest of the line
 * as message, no time or host, and out->error saying what was wrong.
 */
int syslog_parse(const uint8_t *msg, size_t len, uint64_t now_ns, const struct tz *zone,
    struct parsed *out);

#endif
