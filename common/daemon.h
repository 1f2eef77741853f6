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

/* Exit codes users and tests rely on (DESIGN.md). */
#define DAEMON_EXIT_OK 0
#define DAEMON_EXIT_FAILURE 1
#define DAEMON_EXIT_USAGE 2

struct daemon_spec {
	const char *progname;              /* "logferry-agent" */
	const char *summary;               /* one line for --help */
	const char *default_config;        /* used without -c */
	const struct config_schema *schema;
	size_t log_level_offset;           /* of the int log_level in the config */
	/*
	 * Runs the daemon until it is told to stop. config is the loaded
	 * configuration (owned by daemon_main). Returns an exit code.
	 */
	int (*run)(const char *config_file, void *config);
};

/* Parses argv, loads the configuration and runs spec->run. Returns the exit code. */
int daemon_main(const struct daemon_spec *spec, int argc, char **argv);

/* The names of enum log_level, for ENUM config keys. */
extern const char *const daemon_log_levels[];

/* Validators shared by both schemas. */
void daemon_check_file(struct config_check *c, const char *path, const char *file);
void daemon_default_id(struct config_check *c, char **id);

struct daemon_signals;
typedef void (*daemon_signal_cb)(void *arg, int signum);

/*
 * Starts handling SIGTERM and SIGINT (on_stop) and SIGHUP (on_reload) on
 * loop. Returns 0 and sets *out, or a negative libuv error. Closed by
 * daemon_signals_close, which frees it once libuv is done with the handles.
 */
int daemon_signals_start(uv_loop_t *loop, daemon_signal_cb on_stop,
    daemon_signal_cb on_reload, void *arg, struct daemon_signals **out);
void daemon_signals_close(struct daemon_signals *s);

/*
 * On SIGHUP: checks the configuration file again and logs whether it is
 * valid, so that a broken edit is reported before the next restart.
 */
void daemon_reload_check(const struct config_schema *schema, const char *file,
    const char *what);

/* Tells systemd (Type=notify) that the daemon is ready / stopping; no-op without it. */
void daemon_notify_ready(void);
void daemon_notify_stopping(void);

#endif
