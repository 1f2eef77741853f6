/*
 * daemon: what both daemons share around their loop: the command line,
 * loading and checking the configuration, logging setup, signals and
 * systemd readiness. Each daemon supplies a daemon_spec and a run function.
 */
#ifndef LOGFERRY_DAEMON_H
#define LOGFERRY_DAEMON_H

#include <stddef.h>

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

/* The names of enum log_level, for ENUM config keys. */
extern const char *const daemon_log_levels[];

/* Validators shared by both schemas. */
void daemon_check_file(struct config_check *c, const char *path, const char *file);
void daemon_default_id(struct config_check *c, char **id);

#endif
