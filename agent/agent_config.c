/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent_config.h"
#include "agent/multiline.h"
#include "agent/parsers.h"
#include "agent/processors.h"
#include "agent/redact.h"
#include "common/daemon.h"
#include "common/token.h"
#include "common/tls.h"
#include "common/tz.h"

#define KIB INT64_C(1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)
#define SEC INT64_C(1000)
#define HOUR (3600 * SEC)

#define ONLY(t) (1u << (t))

static const char *const source_types[] = { "file", "syslog", "http", "journal", NULL };
static const char *const start_ats[] = { "beginning", "end", NULL };
static const char *const syncs[] = { "always", "relaxed", NULL };

static const struct config_key elem_string = { .type = CONFIG_STRING, .flags = CONFIG_NONEMPTY };
static const struct config_key elem_listen = {
	.type = CONFIG_ADDR, .flags = CONFIG_PORT_ZERO,
	.schemes = CONFIG_SCHEMES(CONFIG_SCHEME_NONE) | CONFIG_SCHEMES(CONFIG_SCHEME_UDP) |
	    CONFIG_SCHEMES(CONFIG_SCHEME_TCP) | CONFIG_SCHEMES(CONFIG_SCHEME_UNIX) |
	    CONFIG_SCHEMES(CONFIG_SCHEME_TLS),
};
static const struct config_key elem_server = {
	.type = CONFIG_ADDR, .schemes = CONFIG_SCHEMES(CONFIG_SCHEME_NONE),
};

#define M(f) (offsetof(struct agent_source, multiline.f) - offsetof(struct agent_source, multiline))
static const struct config_key multiline_keys[] = {
	{ "start", CONFIG_STRING, M(start), .flags = CONFIG_NONEMPTY,
	  .help = "A POSIX extended regex: a line that matches begins a new event, any other line is "
	    "appended to the event before it (e.g. '^[0-9]{4}-[0-9]{2}-[0-9]{2}' for logs whose "
	    "records begin with a date: Java and Python traces alike). Not with continuation." },
	{ "continuation", CONFIG_STRING, M(continuation), .flags = CONFIG_NONEMPTY,
	  .help = "A POSIX extended regex: a line that matches is appended to the event before it, "
	    "any other line begins a new event (e.g. '^[[:space:]]' for Java's tab-indented at "
	    "lines). Not with start." },
	{ "flush_timeout", CONFIG_DURATION, M(flush_timeout_ms), .def = "1s", .min = 10, .max = HOUR,
	  .help = "An event is known to be whole when the line after it comes; the last event of "
	    "a file (or of a syslog TCP connection) is shipped once no line has come for this long." },
	{ "max_bytes", CONFIG_SIZE, M(max_bytes), .def = "1MiB", .min = 256, .max = 64 * MIB,
	  .help = "Largest event: a longer one is cut there and marked multiline_truncated: true; "
	    "the rest of its lines are skipped." },
	{ NULL },
};
#undef M

#define C(f) offsetof(struct agent_condition, f)
static const struct config_key condition_keys[] = {
	{ "field", CONFIG_STRING, C(field), .flags = CONFIG_REQUIRED | CONFIG_NONEMPTY,
	  .help = "The field tested; message, stream and host name the event's own." },
	{ "equals", CONFIG_STRING, C(equals),
	  .help = "Met when the value is this text (a number field: this number; a boolean: true or false)." },
	{ "prefix", CONFIG_STRING, C(prefix), .help = "Met when the value begins with this text." },
	{ "present", CONFIG_BOOL, C(present), .def = "false",
	  .help = "true: met when the event has the field (of any value)." },
	{ "absent", CONFIG_BOOL, C(absent), .def = "false",
	  .help = "true: met when the event has no such field." },
	{ "lt", CONFIG_STRING, C(lt), .flags = CONFIG_NONEMPTY,
	  .help = "Met when the value is a number (or text that is one) below this number." },
	{ "le", CONFIG_STRING, C(le), .flags = CONFIG_NONEMPTY, .help = "Likewise, at most this number." },
	{ "gt", CONFIG_STRING, C(gt), .flags = CONFIG_NONEMPTY, .help = "Likewise, above this number." },
	{ "ge", CONFIG_STRING, C(ge), .flags = CONFIG_NONEMPTY, .help = "Likewise, at least this number." },
	{ NULL },
};
#undef C

static const struct config_key elem_condition = {
	.type = CONFIG_SECTION, .keys = condition_keys, .size = sizeof(struct agent_condition),
};

#define P(f) offsetof(struct agent_processor, f)
static const struct config_key processor_keys[] = {
	{ "type", CONFIG_ENUM, P(type), .flags = CONFIG_REQUIRED, .names = processor_names,
	  .help = "What the stage does: add_fields sets fields; drop drops events that meet every "
	    "condition of when; keep drops those that do not; rename renames fields; remove removes "
	    "them; require sends events without the fields listed to a dead-letter stream; redact "
	    "hashes, masks or removes personal data before it reaches the spool (see "
	    "logferry-agent(8) PROCESSORS)." },
	{ "values", CONFIG_MAP, P(values), .only = ONLY(PROCESSOR_ADD_FIELDS),
	  .required_when = ONLY(PROCESSOR_ADD_FIELDS),
	  .help = "add_fields: field name -> text value, set on every event (an existing field of the "
	    "name is overwritten). ${host} (the host name), ${agent_id} and ${source} (the source's "
	    "name) are replaced in values." },
	{ "when", CONFIG_LIST, P(when), .flags = CONFIG_NONEMPTY, .elem = &elem_condition,
	  .only = ONLY(PROCESSOR_DROP) | ONLY(PROCESSOR_KEEP),
	  .required_when = ONLY(PROCESSOR_DROP) | ONLY(PROCESSOR_KEEP),
	  .help = "drop, keep: conditions, all of which an event meets or not, each a field and "
	    "one of equals, prefix, present, absent, lt, le, gt, ge." },
	{ "map", CONFIG_MAP, P(map), .only = ONLY(PROCESSOR_RENAME),
	  .required_when = ONLY(PROCESSOR_RENAME),
	  .help = "rename: old name -> new name, in order; the field keeps its place and value, and "
	    "a field that had the new name already is replaced." },
	{ "fields", CONFIG_LIST, P(fields), .flags = CONFIG_SCALAR_AS_LIST | CONFIG_NONEMPTY,
	  .elem = &elem_string,
	  .only = ONLY(PROCESSOR_REMOVE) | ONLY(PROCESSOR_REQUIRE) | ONLY(PROCESSOR_REDACT),
	  .required_when = ONLY(PROCESSOR_REMOVE),
	  .help = "remove: names of the fields removed (every field of each name). require: names "
	    "of the fields an event must have (a null value is missing). redact: the fields to "
	    "redact (every field of each name)." },
	{ "types", CONFIG_MAP, P(types), .only = ONLY(PROCESSOR_REQUIRE),
	  .help = "require: field name -> string, integer, number (an integer is one too) or "
	    "boolean: fields an event must have, of that type." },
	{ "dead_letter_stream", CONFIG_STRING, P(dead_letter_stream), .def = "dead_letter",
	  .flags = CONFIG_NONEMPTY, .only = ONLY(PROCESSOR_REQUIRE),
	  .help = "require: the stream an event that fails goes to instead of being dropped, "
	    "with the reason in a logferry_error field and its stream in logferry_stream. The "
	    "stages after still run on it; drop, keep and require let it pass." },
	{ "field", CONFIG_STRING, P(field), .flags = CONFIG_NONEMPTY, .only = ONLY(PROCESSOR_REDACT),
	  .help = "redact: the field to redact (or fields, for several). Not for method regex on "
	    "the message." },
	{ "method", CONFIG_ENUM, P(method), .names = redact_method_names,
	  .only = ONLY(PROCESSOR_REDACT), .required_when = ONLY(PROCESSOR_REDACT),
	  .help = "redact: hash (HMAC-SHA256 of the value under key_file's key, in hex: joinable, "
	    "not reversible), mask_ip (the address's /24 or /48; anything else is removed), drop "
	    "(the field goes), regex (every match of pattern replaced, in the message, or in the "
	    "fields named)." },
	{ "key_file", CONFIG_STRING, P(key_file), .flags = CONFIG_NONEMPTY,
	  .only = ONLY(PROCESSOR_REDACT),
	  .help = "redact, method hash: the file of the HMAC key (an absolute path), 16 to 1024 "
	    "bytes (one trailing newline is not part of it), e.g. made by openssl rand -hex 32; "
	    "mode 0640, owner root:_logferry. Read again on reload." },
	{ "pattern", CONFIG_STRING, P(pattern), .flags = CONFIG_NONEMPTY,
	  .only = ONLY(PROCESSOR_REDACT),
	  .help = "redact, method regex: a POSIX extended regex, e.g. "
	    "'[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+' for email addresses." },
	{ "replacement", CONFIG_STRING, P(replacement), .only = ONLY(PROCESSOR_REDACT),
	  .help = "redact, method regex: the text every match becomes, as it is (no "
	    "back-references). Default: " REDACT_DEFAULT_REPLACEMENT "." },
	{ NULL },
};
#undef P

static const struct config_key elem_processor = {
	.type = CONFIG_SECTION, .keys = processor_keys, .size = sizeof(struct agent_processor),
	.discriminator = "type",
};

#define S(f) offsetof(struct agent_source, f)
static const struct config_key source_keys[] = {
	{ "name", CONFIG_STRING, S(name), .flags = CONFIG_REQUIRED | CONFIG_NONEMPTY,
	  .help = "Names the source in logs and metrics; also the default stream. "
	    "Letters, digits, '.', '_' and '-'; unique among sources." },
	{ "type", CONFIG_ENUM, S(type), .flags = CONFIG_REQUIRED, .names = source_types,
	  .help = "file tails log files; syslog receives syslog messages; http receives JSON events; journal reads the systemd journal." },
	{ "stream", CONFIG_STRING, S(stream), .flags = CONFIG_NONEMPTY,
	  .help = "Routing name of this source's events (the relay's ${stream}). Default: the source's name." },
	{ "paths", CONFIG_LIST, S(paths), .flags = CONFIG_SCALAR_AS_LIST | CONFIG_NONEMPTY,
	  .elem = &elem_string, .only = ONLY(SOURCE_FILE), .required_when = ONLY(SOURCE_FILE),
	  .help = "Files to tail, as absolute paths or glob patterns; globs are re-scanned so that files created later are picked up." },
	{ "exclude", CONFIG_LIST, S(exclude), .flags = CONFIG_SCALAR_AS_LIST,
	  .elem = &elem_string, .only = ONLY(SOURCE_FILE),
	  .help = "Glob patterns of files never to read, e.g. rotated *.gz files that paths would match." },
	{ "format", CONFIG_ENUM, S(format), .def = "raw", .names = parser_names,
	  .only = ONLY(SOURCE_FILE),
	  .help = "How lines are parsed: raw; nginx_combined (NGINX's default access log, the fast path); nginx (the access log in log_format); nginx_error (NGINX's error log, its times in timezone); json (one object per line); syslog. A line that does not parse is still shipped, with a parse_error field." },
	{ "log_format", CONFIG_STRING, S(nginx_log_format), .flags = CONFIG_NONEMPTY,
	  .only = ONLY(SOURCE_FILE),
	  .help = "With format: nginx, NGINX's log_format as in nginx.conf: the whole directive (log_format main escape=json '...' '...';), its quoted strings, or the bare format. Fields are named after the variables; numbers and times are typed, upstream lists become arrays." },
	{ "timezone", CONFIG_STRING, S(timezone), .flags = CONFIG_NONEMPTY,
	  .only = ONLY(SOURCE_FILE) | ONLY(SOURCE_SYSLOG),
	  .help = "Time zone of syslog timestamps that carry none (RFC 3164's \"Mmm dd hh:mm:ss\"): an IANA name such as Europe/Paris (from tzdata), or a POSIX TZ rule. Default: the agent's local zone (TZ, else /etc/localtime)." },
	{ "start_at", CONFIG_ENUM, S(start_at), .def = "beginning", .names = start_ats,
	  .only = ONLY(SOURCE_FILE) | ONLY(SOURCE_JOURNAL),
	  .help = "Where to start in a file seen for the first time (journal: when the source has no saved cursor). Files and journals already known resume where they were." },
	{ "max_line", CONFIG_SIZE, S(max_line), .def = "1MiB", .min = 256, .max = 64 * MIB,
	  .only = ONLY(SOURCE_FILE),
	  .help = "Longer lines are split into pieces of this size, each marked with a field." },
	{ "scan_interval", CONFIG_DURATION, S(scan_interval_ms), .def = "10s", .min = 100, .max = HOUR,
	  .only = ONLY(SOURCE_FILE), .help = "How often globs are expanded again to find new files." },
	{ "stat_interval", CONFIG_DURATION, S(stat_interval_ms), .def = "1s", .min = 10, .max = 60 * SEC,
	  .only = ONLY(SOURCE_FILE),
	  .help = "How often open files are checked with stat, the safety net behind inotify." },
	{ "flush_timeout", CONFIG_DURATION, S(flush_timeout_ms), .def = "5s", .min = 10, .max = HOUR,
	  .only = ONLY(SOURCE_FILE),
	  .help = "A last line without its newline is shipped after waiting this long." },
	{ "max_open_files", CONFIG_INT, S(max_open_files), .def = "1024", .min = 1, .max = 1048576,
	  .only = ONLY(SOURCE_FILE),
	  .help = "Files of this source open at once. Every matching file is read: when all are open, "
	    "the one idle longest is closed and reopened by identity once it changes. Capped at half "
	    "the agent's descriptor limit (RLIMIT_NOFILE, raised to its hard limit at start)." },
	{ "close_inactive", CONFIG_DURATION, S(close_inactive_ms), .def = "5m", .min = 100,
	  .max = 24 * HOUR, .only = ONLY(SOURCE_FILE),
	  .help = "A file read to its end that has not changed for this long is closed; it is "
	    "reopened by identity (device, inode, fingerprint) when it changes, from where it was." },
	{ "listen", CONFIG_LIST, S(listen), .flags = CONFIG_SCALAR_AS_LIST | CONFIG_NONEMPTY,
	  .elem = &elem_listen, .only = ONLY(SOURCE_SYSLOG) | ONLY(SOURCE_HTTP),
	  .required_when = ONLY(SOURCE_SYSLOG) | ONLY(SOURCE_HTTP),
	  .help = "Where to listen. syslog: udp://host:port, tcp://host:port or unix:///path (a datagram socket); "
	    "http: host:port." },
	{ "max_message_size", CONFIG_SIZE, S(max_message_size), .def = "64KiB", .min = 480, .max = 16 * MIB,
	  .only = ONLY(SOURCE_SYSLOG),
	  .help = "Largest syslog message accepted: longer datagrams and newline-framed lines are cut there and marked truncated; longer octet-counted messages are skipped and counted." },
	{ "socket_mode", CONFIG_STRING, S(socket_mode), .def = "0666", .only = ONLY(SOURCE_SYSLOG),
	  .help = "Permissions of unix sockets the agent creates, in octal." },
	{ "receive_buffer", CONFIG_SIZE, S(receive_buffer), .def = "8MiB", .min = 4 * KIB, .max = 1 * GIB,
	  .only = ONLY(SOURCE_SYSLOG),
	  .help = "Kernel receive buffer of each udp:// and unix:// listener: datagrams that arrive while the agent cannot read wait there; what does not fit is dropped by the kernel and counted. Above net.core.rmem_max it needs CAP_NET_ADMIN (SO_RCVBUFFORCE); the size granted is logged." },
	{ "max_connections", CONFIG_INT, S(max_connections), .def = "256", .min = 1, .max = 65536,
	  .only = ONLY(SOURCE_SYSLOG) | ONLY(SOURCE_HTTP),
	  .help = "Stream connections open at once. http: when all are in use, the connection idle the longest (keep-alive, between requests) is closed to admit a new one; when none is idle, further ones are accepted and closed at once, and counted. syslog: further ones are accepted and closed at once, and counted." },
	HTTPD_CONFIG_CONNECTION_KEYS(S(max_body_size), S(idle_timeout_ms), ONLY(SOURCE_HTTP)),
	{ "request_timeout", CONFIG_DURATION, S(request_timeout_ms), .def = "10s", .min = 100, .max = HOUR,
	  .only = ONLY(SOURCE_HTTP),
	  .help = "How long a request may wait for room (in the spool's hand-off queue, or in memory_limit's share for bodies), and then for its events' commit, before it is answered 503 with Retry-After. A full spool is answered 503 at once." },
	{ "directory", CONFIG_STRING, S(directory), .flags = CONFIG_NONEMPTY,
	  .only = ONLY(SOURCE_JOURNAL),
	  .help = "A directory of journal files to read (e.g. /var/log/journal/remote) instead of the local journal." },
	{ "files", CONFIG_LIST, S(files), .flags = CONFIG_SCALAR_AS_LIST | CONFIG_NONEMPTY,
	  .elem = &elem_string, .only = ONLY(SOURCE_JOURNAL),
	  .help = "Journal files to read instead of the local journal; files added later are not seen (use directory for that)." },
	{ "matches", CONFIG_LIST, S(matches), .flags = CONFIG_SCALAR_AS_LIST,
	  .elem = &elem_string, .only = ONLY(SOURCE_JOURNAL),
	  .help = "Entries to read, as FIELD=value (e.g. _SYSTEMD_UNIT=nginx.service, SYSLOG_FACILITY=4), as journalctl: matches of the same field are ORed, of different fields ANDed. Default: every entry." },
	{ "max_field_size", CONFIG_SIZE, S(max_field_size), .def = "64KiB", .min = 256, .max = 16 * MIB,
	  .only = ONLY(SOURCE_JOURNAL),
	  .help = "A journal field's value (MESSAGE included) longer than this is cut there, and the event marked truncated." },
	{ "auth", CONFIG_SECTION, S(auth), .keys = httpd_config_auth_keys,
	  .only = ONLY(SOURCE_HTTP),
	  .help = "Who may post, and how much: without it any client that reaches the listener "
	    "may (keep such a source on loopback)." },
	{ "tls", CONFIG_SECTION, S(tls), .keys = httpd_config_tls_keys,
	  .only = ONLY(SOURCE_HTTP) | ONLY(SOURCE_SYSLOG),
	  .help = "HTTPS: with cert_file and key_file an http source takes TLS connections only, on "
	    "the same listen addresses. A syslog source's tls:// listeners (RFC 5425) need them, "
	    "and only they use them; there a client whose common name allowed_cns does not allow "
	    "has its connection closed, counted. SIGHUP loads the files again for new "
	    "connections." },
	{ "multiline", CONFIG_SECTION, S(multiline), .keys = multiline_keys,
	  .only = ONLY(SOURCE_FILE) | ONLY(SOURCE_SYSLOG) | ONLY(SOURCE_JOURNAL),
	  .help = "Events of several lines, such as stack traces: exactly one of start or "
	    "continuation. A file's position (a journal's cursor) advances only when a whole event "
	    "is in the spool. "
	    "On a syslog source (tcp:// and tls:// listeners only), the patterns match each message's MSG "
	    "part, per connection." },
	{ "processors", CONFIG_LIST, S(processors), .elem = &elem_processor,
	  .help = "Processing stages for this source's events, in order, run before the global "
	    "processors (see logferry-agent(8) PROCESSORS)." },
	{ NULL },
};
#undef S

static const struct config_key elem_source = {
	.type = CONFIG_SECTION, .keys = source_keys, .size = sizeof(struct agent_source),
	.discriminator = "type",
};

#define A(f) offsetof(struct agent_config, f)
static const struct config_key spool_keys[] = {
	{ "max_size", CONFIG_SIZE, A(spool.max_size) - A(spool), .def = "1GiB", .min = 16 * MIB,
	  .max = INT64_C(1) << 40,
	  .help = "Bytes of events the spool may hold. When it is full, file sources pause, "
	    "syslog over UDP drops (counted) and stream sources push back. The data file "
	    "may grow a reserve past it (a sixteenth, 4 to 64 MiB) that only deletes use, "
	    "so that a full spool or a full disk still drains." },
	{ "sync", CONFIG_ENUM, A(spool.sync) - A(spool), .def = "always", .names = syncs,
	  .help = "always flushes every commit to disk; relaxed skips the metadata flush "
	    "(a power loss may undo the last commit; the database stays intact)." },
	{ "commit_interval", CONFIG_DURATION, A(spool.commit_interval_ms) - A(spool), .def = "5ms",
	  .min = 1, .max = 10 * SEC,
	  .help = "Longest time an event waits before its group commit." },
	{ "names_size", CONFIG_SIZE, A(spool.names_size) - A(spool), .def = "256KiB", .min = 0,
	  .max = 64 * MIB,
	  .help = "Bytes of field names and of sources' host, stream and source that the spool "
	    "writes once per segment (event format 2) instead of in every event; allocated "
	    "once. Names seen after it is full are written in every event, as before." },
	{ NULL },
};

#define R(f) (A(relays.f) - A(relays))
static const struct config_key tls_keys[] = {
	{ "ca_file", CONFIG_STRING, R(tls.ca_file) - R(tls), .flags = CONFIG_REQUIRED | CONFIG_NONEMPTY,
	  .help = "PEM file of the CA(s) that sign relay certificates." },
	{ "cert_file", CONFIG_STRING, R(tls.cert_file) - R(tls), .flags = CONFIG_REQUIRED | CONFIG_NONEMPTY,
	  .help = "PEM certificate of this agent (its common name is the agent id), followed by any intermediate CA certificates." },
	{ "key_file", CONFIG_STRING, R(tls.key_file) - R(tls), .flags = CONFIG_REQUIRED | CONFIG_NONEMPTY,
	  .help = "PEM private key of cert_file (RSA or ECDSA)." },
	{ "key_password", CONFIG_STRING, R(tls.key_password) - R(tls), .flags = CONFIG_SECRET,
	  .help = TLS_KEY_PASSWORD_HELP },
	{ "server_name", CONFIG_STRING, R(tls.server_name) - R(tls), .flags = CONFIG_NONEMPTY,
	  .help = "Name the relay certificate must carry. Default: the host of each server." },
	{ "ciphers", CONFIG_LIST, R(tls.ciphers) - R(tls), .flags = CONFIG_SCALAR_AS_LIST | CONFIG_SPLIT_COMMAS,
	  .elem = &elem_string,
	  .help = "TLS 1.2 cipher suites in order of preference (mbedtls names). Default: ECDHE with ChaCha20-Poly1305, then AES-GCM." },
	{ "handshake_timeout", CONFIG_DURATION, R(tls.handshake_timeout_ms) - R(tls), .def = "10s",
	  .min = 100, .max = 300 * SEC, .help = "A handshake not finished in this time is abandoned." },
	{ NULL },
};

static const struct config_key batch_keys[] = {
	{ "max_events", CONFIG_INT, R(batch.max_events) - R(batch), .def = "4096", .min = 1, .max = 1000000,
	  .help = "Events per spool segment, and so per batch at most." },
	{ "max_bytes", CONFIG_SIZE, R(batch.max_bytes) - R(batch), .def = "1MiB", .min = 4 * KIB, .max = 256 * MIB,
	  .help = "Uncompressed bytes per spool segment." },
	{ "max_delay", CONFIG_DURATION, R(batch.max_delay_ms) - R(batch), .def = "50ms", .min = 1, .max = 60 * SEC,
	  .help = "Longest time a spooled event waits for its batch to fill before it is sent." },
	{ NULL },
};

static const struct config_key relays_keys[] = {
	{ "servers", CONFIG_LIST, R(servers), .flags = CONFIG_REQUIRED | CONFIG_NONEMPTY | CONFIG_SCALAR_AS_LIST,
	  .elem = &elem_server,
	  .help = "Relays as host:port. Each connection goes to one at random (and to a random address "
	  "of its name); after a failure, to another." },
	{ "tls", CONFIG_SECTION, R(tls), .flags = CONFIG_REQUIRED, .keys = tls_keys,
	  .help = "Mutual TLS with the relays." },
	{ "batch", CONFIG_SECTION, R(batch), .keys = batch_keys, .help = "Segment and batch sizes." },
	{ "window", CONFIG_INT, R(window), .def = "8", .min = 1, .max = 1024,
	  .help = "Batches in flight per connection; the relay's Welcome may lower it." },
	{ "connection_lifetime", CONFIG_DURATION, R(connection_lifetime_ms), .def = "30m", .min = 0, .max = 24 * HOUR,
	  .help = "Reconnect after this long so load spreads over a relay fleet that grew; 0 never." },
	{ "reconnect_min", CONFIG_DURATION, R(reconnect_min_ms), .def = "100ms", .min = 10, .max = HOUR,
	  .help = "First delay before reconnecting; doubles, with jitter, on each failure." },
	{ "reconnect_max", CONFIG_DURATION, R(reconnect_max_ms), .def = "30s", .min = 10, .max = HOUR,
	  .help = "Longest delay between reconnection attempts." },
	{ "ping_interval", CONFIG_DURATION, R(ping_interval_ms), .def = "10s", .min = 100, .max = HOUR,
	  .help = "A Ping goes to the relay this often while connected; below ping_timeout." },
	{ "ping_timeout", CONFIG_DURATION, R(ping_timeout_ms), .def = "30s", .min = 100, .max = HOUR,
	  .help = "A relay from which no frame at all arrived for this long is dead: reconnect." },
	{ NULL },
};
#undef R

static const struct config_key metrics_keys[] = {
	{ "listen", CONFIG_ADDR, 0, .flags = CONFIG_REQUIRED | CONFIG_PORT_ZERO,
	  .schemes = CONFIG_SCHEMES(CONFIG_SCHEME_NONE),
	  .help = "host:port of the Prometheus metrics and health endpoint (/metrics, /health)." },
	{ NULL },
};

static const struct config_key agent_keys[] = {
	{ "id", CONFIG_STRING, A(id), .flags = CONFIG_NONEMPTY,
	  .help = "Agent id, sent to relays and put in every record; must match the certificate's "
	    "common name. Default: the host name." },
	{ "data_dir", CONFIG_STRING, A(data_dir), .def = LOCALSTATEDIR "/lib/logferry", .flags = CONFIG_NONEMPTY,
	  .help = "Directory of the spool and the file read positions." },
	{ "log_level", CONFIG_ENUM, A(log_level), .def = "info", .names = daemon_log_levels,
	  .help = "Least severe level of the daemon's own messages on stderr." },
	{ "log_format", CONFIG_ENUM, A(log_format), .def = "text", .names = daemon_log_formats,
	  .help = DAEMON_LOG_FORMAT_HELP },
	{ "memory_limit", CONFIG_SIZE, A(memory_limit), .def = "64MiB", .min = 4 * MIB, .max = 64 * GIB,
	  .help = "One budget: a sixteenth for events on their way to the spool, half for TCP syslog "
	    "and HTTP request buffers (more connections wait or get 503), the rest for fixed buffers." },
	{ "spool", CONFIG_SECTION, A(spool), .keys = spool_keys, .help = "The durable LMDB spool in data_dir." },
	{ "sources", CONFIG_LIST, A(sources), .flags = CONFIG_REQUIRED | CONFIG_NONEMPTY, .elem = &elem_source,
	  .help = "Where events come from." },
	{ "processors", CONFIG_LIST, A(processors), .elem = &elem_processor,
	  .help = "Processing stages for every source's events, in order, after the source's own "
	    "processors, at the door into the spool: what they remove never reaches the disk "
	    "(see logferry-agent(8) PROCESSORS)." },
	{ "processor_buffer", CONFIG_SIZE, A(processor_buffer), .def = "4MiB", .min = 64 * KIB,
	  .max = 1 * GIB,
	  .help = "Bytes the processors of one source may write for one event (values they set, a "
	    "message they rewrite and the fields taken out of it). An event that needs more is not "
	    "spooled, and counted in logferry_processor_errors_total." },
	{ "relays", CONFIG_SECTION, A(relays), .keys = relays_keys,
	  .help = "Where events go. Without it the agent only spools." },
	{ "metrics", CONFIG_SECTION, A(metrics), .keys = metrics_keys,
	  .help = "Prometheus metrics. Without it no endpoint is opened." },
	{ NULL },
};

static bool
agent_config_name_ok(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-'))
			return false;
	return true;
}

/* A journal match: FIELD=value, FIELD as journald allows (journal_field_valid). */
static bool
agent_config_match_ok(const char *m)
{
	const char *eq = strchr(m, '=');

	if (eq == NULL || eq == m || eq - m > 64 || (m[0] >= '0' && m[0] <= '9'))
		return false;
	for (const char *p = m; p < eq; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

static void
agent_config_check_journal(struct config_check *c, const struct agent_source *s, size_t i)
{
	char path[64];

	snprintf(path, sizeof(path), "sources[%zu].directory", i);
	if (s->directory != NULL && s->directory[0] != '/')
		config_error(c, path, "'%s' is not an absolute path", s->directory);
	if (s->directory != NULL && s->files.n > 0)
		config_error(c, path, "directory and files cannot both be set: read a directory of "
		    "journal files, or the files listed");
	for (size_t j = 0; j < s->files.n; j++) {
		const char *f = ((char **)s->files.items)[j];

		snprintf(path, sizeof(path), "sources[%zu].files[%zu]", i, j);
		if (f[0] != '/')
			config_error(c, path, "'%s' is not an absolute path", f);
	}
	for (size_t j = 0; j < s->matches.n; j++) {
		const char *m = ((char **)s->matches.items)[j];

		snprintf(path, sizeof(path), "sources[%zu].matches[%zu]", i, j);
		if (!agent_config_match_ok(m))
			config_error(c, path, "'%s' is not FIELD=value with FIELD in upper case "
			    "letters, digits and '_' (e.g. _SYSTEMD_UNIT=nginx.service)", m);
	}
#ifndef HAVE_SYSTEMD
	snprintf(path, sizeof(path), "sources[%zu].type", i);
	config_error(c, path, "this agent was built without libsystemd (configure found no "
	    "libsystemd-dev): it cannot read the journal");
#endif
}


/*
 * Neither pattern, and the other keys at their defaults: what --dump-config
 * writes for a source without multiline, which must load again as that.
 * Anything else without a pattern is a rule half written, and an error.
 */
static bool
agent_config_multiline_inert(const struct agent_source *s)
{
	uint64_t flush_ms = 0, max_bytes = 0;

	for (const struct config_key *k = multiline_keys; k->name != NULL; k++) {
		if (strcmp(k->name, "flush_timeout") == 0 &&
		    config_parse_duration(k->def, &flush_ms) != 0)
			return false;
		if (strcmp(k->name, "max_bytes") == 0 && config_parse_size(k->def, &max_bytes) != 0)
			return false;
	}
	return s->multiline.start == NULL && s->multiline.continuation == NULL &&
	    s->multiline.flush_timeout_ms == flush_ms && s->multiline.max_bytes == max_bytes;
}
static void
agent_config_check_multiline(struct config_check *c, const struct agent_source *s, size_t i)
{
	struct multiline_rule r;
	char path[64], err[256];

	snprintf(path, sizeof(path), "sources[%zu].multiline", i);
	if (!config_present(c, path) || agent_config_multiline_inert(s))
		return;
	/* Lines are gathered per stream: a datagram socket is one stream of many senders. */
	for (size_t j = 0; s->type == SOURCE_SYSLOG && j < s->listen.n; j++) {
		const struct config_addr *l = (const struct config_addr *)s->listen.items + j;

		/* No scheme at all is an error of its own (listen[j]). */
		if (l->scheme != CONFIG_SCHEME_UDP && l->scheme != CONFIG_SCHEME_UNIX)
			continue;
		config_error(c, path, "listen[%zu] '%s' receives datagrams, whose lines from many "
		    "senders interleave: multiline works on tcp:// and tls:// listeners only; give "
		    "those a source of their own", j, l->text);
		return;
	}
	if (s->multiline.start != NULL && s->multiline.continuation == NULL)
		snprintf(path, sizeof(path), "sources[%zu].multiline.start", i);
	else if (s->multiline.start == NULL && s->multiline.continuation != NULL)
		snprintf(path, sizeof(path), "sources[%zu].multiline.continuation", i);
	if (multiline_rule_init(&r, s->multiline.start, s->multiline.continuation, err,
	    sizeof(err)) != 0)
		config_error(c, path, "%s", err);
	else
		multiline_rule_free(&r);
}

void
agent_config_source_tls_options(const struct agent_source *s, struct tls_config_options *o)
{
	httpd_config_tls_options(&s->tls, o);
}

void
agent_config_parser_config(const struct agent_source *s, struct parser_config *out)
{
	out->source = s->name;
	out->log_format = s->nginx_log_format;
	out->timezone = s->timezone;
}

bool
agent_config_has_tls_listener(const struct agent_source *s)
{
	for (size_t j = 0; j < s->listen.n; j++)
		if (((const struct config_addr *)s->listen.items)[j].scheme == CONFIG_SCHEME_TLS)
			return true;
	return false;
}

/* A source's tls section: its files load as the source will load them (host: true). */
static void
agent_config_check_source_tls(struct config_check *c, const struct agent_source *s, size_t i,
    bool host)
{
	struct tls_config_options o;
	char path[64];

	snprintf(path, sizeof(path), "sources[%zu].tls", i);
	if (!config_present(c, path) || (s->tls.cert_file == NULL && s->tls.key_file == NULL &&
	    s->tls.ca_file == NULL && s->tls.ciphers.n == 0 && !s->tls.verify_client &&
	    s->tls.allowed_cns.n == 0))
		return;
	if (s->type == SOURCE_SYSLOG && !agent_config_has_tls_listener(s)) {
		config_error(c, path, "is for tls:// listeners, and this source has none: add one "
		    "(tls://host:6514) or remove the section");
		return;
	}
	if (s->tls.cert_file == NULL || s->tls.key_file == NULL) {
		if (s->type == SOURCE_HTTP)
			config_error(c, path, "HTTPS needs cert_file and key_file");
		return;   /* syslog: listen[j] says it */
	}
	if (s->tls.allowed_cns.n > 0 && !s->tls.verify_client) {
		snprintf(path, sizeof(path), "sources[%zu].tls.allowed_cns", i);
		config_error(c, path, "needs verify_client: true (without client certificates "
		    "there is no common name to allow)");
		return;
	}
	agent_config_source_tls_options(s, &o);
	if (host) {
		(void)daemon_check_tls(c, path, &o, NULL, 0);
		return;
	}
	snprintf(path, sizeof(path), "sources[%zu].tls.cert_file", i);
	(void)daemon_check_file(c, path, s->tls.cert_file);
	snprintf(path, sizeof(path), "sources[%zu].tls.key_file", i);
	(void)daemon_check_file(c, path, s->tls.key_file);
	snprintf(path, sizeof(path), "sources[%zu].tls.ca_file", i);
	(void)daemon_check_file(c, path, s->tls.ca_file);
}

/* The tokens file loads as the source will load it: its errors name its line. */
static void
agent_config_check_auth(struct config_check *c, const struct agent_source *s, size_t i)
{
	struct token_set *ts = NULL;
	char path[64], err[512];

	if (s->auth.tokens_file == NULL) {
		snprintf(path, sizeof(path), "sources[%zu].auth", i);
		if (s->auth.events_per_s != 0 || s->auth.bytes_per_s != 0 ||
		    s->auth.events_burst != 0 || s->auth.bytes_burst != 0)
			config_error(c, path, "rate limits are per sender: set tokens_file");
		return;
	}
	snprintf(path, sizeof(path), "sources[%zu].auth.tokens_file", i);
	if (token_set_load(s->auth.tokens_file, AGENT_MAX_TOKENS, &ts, err, sizeof(err)) != 0)
		config_error(c, path, "%s", err);
	token_set_free(ts);
}

static void
agent_config_check_source(struct config_check *c, const struct agent_config *cfg,
    size_t i)
{
	const struct agent_source *s = (const struct agent_source *)cfg->sources.items + i;
	const struct config_addr *l = s->listen.items;
	char path[64];

	snprintf(path, sizeof(path), "sources[%zu].name", i);
	if (!agent_config_name_ok(s->name))
		config_error(c, path, "'%s' may contain only letters, digits, '.', '_' and '-'", s->name);
	for (size_t j = 0; j < i; j++) {
		const struct agent_source *o = (const struct agent_source *)cfg->sources.items + j;

		if (strcmp(o->name, s->name) == 0)
			config_error(c, path, "'%s' is already the name of sources[%zu]", s->name, j);
	}
	for (size_t j = 0; j < s->paths.n; j++) {
		const char *p = ((char **)s->paths.items)[j];

		snprintf(path, sizeof(path), "sources[%zu].paths[%zu]", i, j);
		if (p[0] != '/')
			config_error(c, path, "'%s' is not an absolute path", p);
	}
	for (size_t j = 0; j < s->listen.n; j++) {
		snprintf(path, sizeof(path), "sources[%zu].listen[%zu]", i, j);
		if (s->type == SOURCE_SYSLOG && l[j].scheme == CONFIG_SCHEME_NONE)
			config_error(c, path, "'%s' needs a scheme: udp://, tcp://, tls:// or unix://",
			    l[j].text);
		if (s->type == SOURCE_SYSLOG && l[j].scheme == CONFIG_SCHEME_TLS &&
		    (s->tls.cert_file == NULL || s->tls.key_file == NULL))
			config_error(c, path, "'%s' needs the source's tls.cert_file and tls.key_file "
			    "(the certificate it presents, RFC 5425)", l[j].text);
		if (s->type == SOURCE_HTTP && l[j].scheme != CONFIG_SCHEME_NONE)
			config_error(c, path, "'%s': an http source listens on host:port", l[j].text);
	}
	if (parser_type_of(s->format)->check != NULL) {
		struct parser_config pc;
		char err[256];

		snprintf(path, sizeof(path), "sources[%zu].%s", i,
		    s->nginx_log_format != NULL ? "log_format" : "format");
		agent_config_parser_config(s, &pc);
		if (parser_type_of(s->format)->check(&pc, err, sizeof(err)) != 0)
			config_error(c, path, "%s", err);
	} else if (s->nginx_log_format != NULL) {
		snprintf(path, sizeof(path), "sources[%zu].log_format", i);
		config_error(c, path, "is for format: nginx only (this source's format is %s)",
		    parser_type_of(s->format)->name);
	}
	if (s->timezone != NULL) {
		struct tz *z = NULL;
		int r = tz_load(s->timezone, &z);

		snprintf(path, sizeof(path), "sources[%zu].timezone", i);
		if (r != 0)
			config_error(c, path, "'%s' is not a time zone: %s (an IANA name such as "
			    "Europe/Paris needs tzdata, or write a POSIX TZ rule such as "
			    "CET-1CEST,M3.5.0,M10.5.0/3)", s->timezone,
			    r == -ENOENT ? "no such zone" : strerror(-r));
		tz_free(z);
	}
	if (s->type == SOURCE_JOURNAL)
		agent_config_check_journal(c, s, i);
	if (s->type == SOURCE_HTTP)
		agent_config_check_auth(c, s, i);
	agent_config_check_multiline(c, s, i);
	if (s->type == SOURCE_SYSLOG) {
		char *end;
		long mode = strtol(s->socket_mode, &end, 8);

		snprintf(path, sizeof(path), "sources[%zu].socket_mode", i);
		if (s->socket_mode[0] == '\0' || *end != '\0' || mode < 0 || mode > 0777)
			config_error(c, path, "'%s' is not an octal file mode such as 0660", s->socket_mode);
	}
}

/*
 * Compiles every source's chain: its processors, then the global ones. An
 * error in the global list is the same for every source: said once.
 */
static void
agent_config_compile_processors(struct config_check *c, struct agent_config *cfg)
{
	struct processor_context ctx = { .agent_id = cfg->id, .config_file = config_check_file(c) };
	char host[256], path[64];
	bool global_said = false;

	if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "%s", cfg->id);
	host[sizeof(host) - 1] = '\0';
	ctx.host = host;
	for (size_t i = 0; i < cfg->sources.n; i++) {
		struct agent_source *s = (struct agent_source *)cfg->sources.items + i;
		const struct config_list *lists[] = { &s->processors, &cfg->processors };
		struct processors_error e;

		ctx.source = s->name;
		if (processors_compile(lists, 2, &ctx, cfg->processor_buffer, &s->chain, &e) == 0)
			continue;
		if (e.list == 0)
			snprintf(path, sizeof(path), "sources[%zu].processors[%zu]", i, e.index);
		else if (!global_said)
			snprintf(path, sizeof(path), "processors[%zu]", e.index);
		else
			continue;
		global_said = global_said || e.list == 1;
		config_error(c, path, "%s", e.msg);
	}
}

static void
agent_config_release(void *obj)
{
	struct agent_config *cfg = obj;

	for (size_t i = 0; i < cfg->sources.n; i++) {
		struct agent_source *s = (struct agent_source *)cfg->sources.items + i;

		processors_free(s->chain);
		s->chain = NULL;
	}
}

void
agent_config_tls_options(const struct agent_config *cfg, struct tls_config_options *o)
{
	memset(o, 0, sizeof(*o));
	o->role = TLS_ROLE_CLIENT;
	o->ca_file = cfg->relays.tls.ca_file;
	o->cert_file = cfg->relays.tls.cert_file;
	o->key_file = cfg->relays.tls.key_file;
	o->key_password = cfg->relays.tls.key_password;
	o->ciphers = (const char *const *)cfg->relays.tls.ciphers.items;
	o->n_ciphers = cfg->relays.tls.ciphers.n;
	o->handshake_timeout_ms = cfg->relays.tls.handshake_timeout_ms;
}

/*
 * The relays refuse an agent whose id is not its certificate's common name
 * (relay/server.c, with verify_client on, their default): say so now rather
 * than at every connection.
 */
static void
agent_config_check_cn(struct config_check *c, const struct agent_config *cfg, const char *cn)
{
	const char *cert = cfg->relays.tls.cert_file;

	if (cn[0] == '\0')
		config_error(c, "relays.tls.cert_file", "'%s' has no usable common name (one, of at "
		    "most %d bytes): relays refuse it; issue a certificate whose common name is the "
		    "agent's id, '%s'", cert, TLS_CN_MAX, cfg->id);
	else if (strcmp(cn, cfg->id) != 0 && config_present(c, "id"))
		config_error(c, "id", "'%s' is not the common name of relays.tls.cert_file %s ('%s'): "
		    "relays refuse an agent whose id differs from its certificate's; set id to '%s' "
		    "or issue a certificate for '%s'", cfg->id, cert, cn, cn, cfg->id);
	else if (strcmp(cn, cfg->id) != 0)
		config_error(c, "id", "not set, so the host name '%s' is the agent's id, and it is not "
		    "the common name of relays.tls.cert_file %s ('%s'): relays refuse an agent whose id "
		    "differs from its certificate's; set id to '%s' or issue a certificate for '%s'",
		    cfg->id, cert, cn, cn, cfg->id);
}

/* What would fail at start: the TLS files, the id, data_dir, listeners. */
static void
agent_config_check_host(struct config_check *c, struct agent_config *cfg)
{
	char cn[TLS_CN_MAX + 1], path[64];

	if (cfg->relays_enabled) {
		struct tls_config_options o;

		agent_config_tls_options(cfg, &o);
		if (daemon_check_tls(c, "relays.tls", &o, cn, sizeof(cn)) == 0 && cfg->id != NULL)
			agent_config_check_cn(c, cfg, cn);
	}
	daemon_check_dir(c, "data_dir", cfg->data_dir);
	for (size_t i = 0; i < cfg->sources.n; i++) {
		const struct agent_source *s = (const struct agent_source *)cfg->sources.items + i;

		for (size_t j = 0; j < s->listen.n; j++) {
			snprintf(path, sizeof(path), "sources[%zu].listen[%zu]", i, j);
			daemon_check_listen(c, path, (const struct config_addr *)s->listen.items + j);
		}
	}
	daemon_check_listen(c, "metrics.listen", &cfg->metrics.listen);
}

static void
agent_config_check(struct config_check *c, struct agent_config *cfg, bool host)
{
	for (size_t i = 0; i < cfg->sources.n; i++) {
		agent_config_check_source(c, cfg, i);
		agent_config_check_source_tls(c, (const struct agent_source *)cfg->sources.items + i,
		    i, host);
	}
	cfg->relays_enabled = config_present(c, "relays");
	if (cfg->relays_enabled) {
		if (!host) {
			(void)daemon_check_file(c, "relays.tls.ca_file", cfg->relays.tls.ca_file);
			(void)daemon_check_file(c, "relays.tls.cert_file", cfg->relays.tls.cert_file);
			(void)daemon_check_file(c, "relays.tls.key_file", cfg->relays.tls.key_file);
		}
		if (cfg->relays.reconnect_min_ms > cfg->relays.reconnect_max_ms)
			config_error(c, "relays.reconnect_min", "must not be above reconnect_max");
		/* Only Pings make a quiet relay send something within ping_timeout. */
		if (cfg->relays.ping_interval_ms >= cfg->relays.ping_timeout_ms)
			config_error(c, "relays.ping_interval", "must be below ping_timeout (%" PRIu64
			    " ms)", cfg->relays.ping_timeout_ms);
	}
	daemon_default_id(c, &cfg->id);
	agent_config_compile_processors(c, cfg);
	if (host)
		agent_config_check_host(c, cfg);
}

static void
agent_config_validate(struct config_check *c, void *obj)
{
	agent_config_check(c, obj, true);
}

static void
agent_config_validate_rules(struct config_check *c, void *obj)
{
	agent_config_check(c, obj, false);
}

const struct config_schema agent_config_schema = {
	.name = "agent",
	.keys = agent_keys,
	.size = sizeof(struct agent_config),
	.validate = agent_config_validate,
	.release = agent_config_release,
	.secrets = CONFIG_SECRETS_AT(struct agent_config, secrets),
};

const struct config_schema agent_config_rules_schema = {
	.name = "agent",
	.keys = agent_keys,
	.size = sizeof(struct agent_config),
	.validate = agent_config_validate_rules,
	.release = agent_config_release,
};
