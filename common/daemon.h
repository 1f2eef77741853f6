/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon: what both daemons share around their loop: the command line,
 * loading and checking the configuration, logging setup, signals and
 * systemd readiness. Each daemon supplies a daemon_spec and a run function.
 */
#ifndef LOGFERRY_DAEMON_H
#define LOGFERRY_DAEMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <uv.h>

#include "common/config.h"

/* Exit codes users and tests rely on (docs/architecture.md). */
#define DAEMON_EXIT_OK 0
#define DAEMON_EXIT_FAILURE 1
#define DAEMON_EXIT_USAGE 2

/* An operator command beside running the daemon, e.g. --spool-stats. */
struct daemon_command {
	const char *name;                  /* long option without "--" */
	const char *help;                  /* one line for --help */
	/* Runs with the loaded configuration; returns the exit code. */
	int (*run)(const char *config_file, void *config);
};

struct daemon_spec {
	const char *progname;              /* "logferry-agent" */
	const char *summary;               /* one line for --help */
	const char *default_config;        /* used without -c */
	const struct config_schema *schema;
	size_t log_level_offset;           /* of the int log_level in the config */
	size_t log_format_offset;          /* of the int log_format in the config */
	/* Prints "name version" lines of the libraries only this daemon links. */
	void (*versions)(FILE *out);
	/*
	 * Starts the daemon's work on the main loop, which daemon_main owns
	 * together with the signal handlers. config is the loaded configuration
	 * (owned by daemon_main, valid until finish). Returns 0 and sets *ctx, or
	 * a negative error after logging what failed (the daemon exits 1).
	 */
	int (*start)(uv_loop_t *loop, const char *config_file, void *config, void **ctx);
	/*
	 * Begins a clean stop (SIGTERM, SIGINT): closes every handle the daemon
	 * keeps open, so that the loop ends once in-flight work is done.
	 */
	void (*stop)(void *ctx);
	/* After the loop has ended: frees ctx and returns the exit code. */
	int (*finish)(void *ctx);
	/*
	 * SIGHUP with a valid configuration file: applies the new configuration
	 * *fresh as a whole, or none of it, and logs the outcome. The hook may
	 * keep the configuration by setting *fresh to NULL: it then frees it
	 * (config_free, free) when a later one replaces it or at finish. The
	 * configuration given to start stays daemon_main's until after finish.
	 * Returns 0 when applied, or a negative error when the running
	 * configuration stays (already logged). May be NULL.
	 */
	int (*reload)(void *ctx, void **fresh);
	const struct daemon_command *commands;   /* ends with a NULL name; may be NULL */
};

/*
 * Parses argv and loads the configuration; for a run, starts the daemon on
 * a main loop with signal handling and runs it until it stops. Returns the
 * exit code.
 */
int daemon_main(const struct daemon_spec *spec, int argc, char **argv);

/*
 * Raises the soft descriptor limit (RLIMIT_NOFILE) to the hard one, which
 * needs no privilege, and logs it. Sets *limit to the soft limit now
 * (UINT64_MAX: unlimited). Returns 0, or -errno when the limit cannot be
 * read (*limit then 0).
 */
int daemon_raise_nofile(uint64_t *limit);

struct metrics_writer;
/*
 * The SIGHUP metrics both daemons expose: logferry_config_reloads_total
 * {result="applied|rejected"} and logferry_config_last_reload_timestamp_seconds.
 */
void daemon_render_reloads(struct metrics_writer *w);

/* The names of enum log_level, for ENUM config keys. */
extern const char *const daemon_log_levels[];

/* The names of enum log_format, for the log_format key of both daemons. */
extern const char *const daemon_log_formats[];
#define DAEMON_LOG_FORMAT_HELP "text: one line per message with time, program, pid and level; " \
	"json: one JSON object per line with time (RFC 3339, UTC), level, program, pid and " \
	"message. When stderr is the journal (JOURNAL_STREAM), each line starts with its syslog " \
	"priority, and text lines leave the time and program to journald. Applied at start."

/*
 * Validators shared by both schemas; each reports at path with config_error.
 * daemon_check_file: the file can be read. Returns 0 or -errno.
 */
int daemon_check_file(struct config_check *c, const char *path, const char *file);
void daemon_default_id(struct config_check *c, char **id);

struct tls_config_options;

/*
 * The TLS files of section ("relays.tls") are readable and hold what
 * tls_config_new needs (tls_check_files); cn gets our certificate's common
 * name ("" when it has none or a file is wrong). Returns 0, or a negative
 * error after reporting it at the option's line.
 */
int daemon_check_tls(struct config_check *c, const char *section, const struct tls_config_options *o,
    char *cn, size_t cnlen);

/*
 * dir is a directory this user can write, or one the daemon can create with
 * its parents. Creates nothing: access(2) answers for the user running the
 * check, so --check must run as the daemon's user.
 */
void daemon_check_dir(struct config_check *c, const char *path, const char *dir);

/* A listener's host is an IP address or a well-formed host name (not looked up). */
void daemon_check_listen(struct config_check *c, const char *path, const struct config_addr *a);

#endif
