/* SPDX-License-Identifier: Apache-2.0 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>
#include <mbedtls/version.h>
#include <pb.h>
#include <yaml.h>
#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "common/commit.h"
#include "common/daemon.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/metrics.h"

const char *const daemon_log_levels[] = { "error", "warn", "info", "debug", NULL };
const char *const daemon_log_formats[] = {
	[LOG_FORMAT_TEXT] = "text", [LOG_FORMAT_JSON] = "json", NULL,
};

/* The main loop of a running daemon and its signal handlers. */
struct daemon_run {
	const struct daemon_spec *spec;
	const char *file;
	uv_loop_t loop;
	uv_signal_t term, intr, hup;
	void *ctx;
	bool stopping;
	enum log_format log_format;  /* the running configuration's */
};

/* SIGHUP outcomes: one daemon per process, read by its metrics on the loop thread. */
static struct {
	uint64_t applied, rejected;
	uint64_t last;               /* when the running configuration was loaded, s since the epoch */
} daemon_reloads;

static int daemon_run(const struct daemon_spec *spec, const char *file, void *cfg);

/* The log_format key of a configuration of spec's schema. */
static enum log_format
daemon_log_format(const struct daemon_spec *spec, const void *cfg)
{
	return (enum log_format) * (const int *)((const char *)cfg + spec->log_format_offset);
}

/*
 * --version: the version, the commit it was built from, and the libraries
 * as they are at run time where they can say (a bug report needs what is
 * loaded, not what the build saw). Both daemons link these; each adds its
 * own through spec->versions.
 */
static void
daemon_version(const struct daemon_spec *spec, FILE *out)
{
	unsigned long hp = http_parser_version();
	char mbed[32];
	const char *pb = NANOPB_VERSION;

#ifdef MBEDTLS_VERSION_C
	mbedtls_version_get_string(mbed);
#else
	snprintf(mbed, sizeof(mbed), "%s (built with)", MBEDTLS_VERSION_STRING);
#endif
	if (strncmp(pb, "nanopb-", 7) == 0)
		pb += 7;
	fprintf(out, "%s %s\ncommit %s\n", spec->progname, PACKAGE_VERSION, LOGFERRY_COMMIT);
	fprintf(out, "libuv %s\n", uv_version_string());
	fprintf(out, "mbedtls %s\n", mbed);
	fprintf(out, "libyaml %s\n", yaml_get_version_string());
	fprintf(out, "http-parser %lu.%lu.%lu\n", (hp >> 16) & 255, (hp >> 8) & 255, hp & 255);
	/* Neither has a call that says: the headers built against. */
	fprintf(out, "nanopb %s (built with)\n", pb);
#ifdef LF_SYSTEMD_VERSION
	fprintf(out, "systemd %s (built with)\n", LF_SYSTEMD_VERSION);
#endif
	if (spec->versions != NULL)
		spec->versions(out);
}

static void
daemon_usage(const struct daemon_spec *spec, FILE *out)
{
	fprintf(out,
	    "Usage: %s [-c FILE] [--check] [--dump-config] [--version] [--help]\n"
	    "%s\n"
	    "\n"
	    "  -c, --config FILE   configuration file (default %s)\n"
	    "  -t, --check         check the configuration and exit: 0 if valid, 2 if not\n"
	    "  -T, --dump-config   print the effective configuration, defaults included\n"
	    "  -V, --version       print the version, git commit and library versions, and exit\n"
	    "  -h, --help          print this help and exit\n",
	    spec->progname, spec->summary, spec->default_config);
	for (const struct daemon_command *c = spec->commands; c != NULL && c->name != NULL; c++)
		fprintf(out, "      --%-16s%s\n", c->name, c->help);
	fprintf(out, "\n"
	    "Runs in the foreground and logs to stderr. SIGTERM or SIGINT stop it cleanly.\n"
	    "Exit status: 0 clean stop, 1 runtime failure, 2 usage or configuration error.\n"
	    "See %s(8) and logferry.yaml(5).\n", spec->progname);
}

int
daemon_main(const struct daemon_spec *spec, int argc, char **argv)
{
	static const struct option base[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 't' },
		{ "dump-config", no_argument, NULL, 'T' },
		{ "config-reference", no_argument, NULL, 'R' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
	};
	enum { NBASE = sizeof(base) / sizeof(base[0]), MAXCMD = 8, CMD0 = 0x100 };
	struct option opts[NBASE + MAXCMD + 1];
	const struct daemon_command *command = NULL;
	const char *file = spec->default_config;
	int check = 0, dump = 0, ch, r;
	size_t ncmd = 0;
	void *cfg;

	memcpy(opts, base, sizeof(base));
	for (; spec->commands != NULL && spec->commands[ncmd].name != NULL && ncmd < MAXCMD; ncmd++)
		opts[NBASE + ncmd] = (struct option){ spec->commands[ncmd].name, no_argument, NULL,
		    CMD0 + (int)ncmd };
	memset(&opts[NBASE + ncmd], 0, sizeof(opts[0]));
	while ((ch = getopt_long(argc, argv, "c:tTVh", opts, NULL)) != -1) {
		if (ch >= CMD0 && ch < CMD0 + (int)ncmd) {
			command = &spec->commands[ch - CMD0];
			continue;
		}
		switch (ch) {
		case 'c': file = optarg; break;
		case 't': check = 1; break;
		case 'T': dump = 1; break;
		case 'R':
			/* For the man page build: every key, type, default and help. */
			config_reference(spec->schema, stdout);
			return DAEMON_EXIT_OK;
		case 'V':
			daemon_version(spec, stdout);
			return DAEMON_EXIT_OK;
		case 'h':
			daemon_usage(spec, stdout);
			return DAEMON_EXIT_OK;
		default:
			daemon_usage(spec, stderr);
			return DAEMON_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", spec->progname, argv[optind]);
		daemon_usage(spec, stderr);
		return DAEMON_EXIT_USAGE;
	}

	if ((cfg = calloc(1, spec->schema->size)) == NULL) {
		fprintf(stderr, "%s: out of memory\n", spec->progname);
		return DAEMON_EXIT_FAILURE;
	}
	r = config_load_file(spec->schema, file, cfg, stderr);
	if (r != 0) {
		if (r == -EINVAL)
			fprintf(stderr, "%s: %s: configuration is not valid\n", spec->progname, file);
		r = DAEMON_EXIT_USAGE;
	} else if (check) {
		printf("%s: configuration is valid\n", file);
		r = DAEMON_EXIT_OK;
	} else if (dump) {
		config_dump(spec->schema, cfg, stdout);
		r = DAEMON_EXIT_OK;
	} else if (command != NULL) {
		log_init(spec->progname, LOG_LEVEL_WARN);
		r = command->run(file, cfg);
	} else {
		log_init(spec->progname,
		    (enum log_level) * (int *)((char *)cfg + spec->log_level_offset));
		log_set_style(daemon_log_format(spec, cfg),
		    log_stderr_is_journal());
		/* Writes to a closed socket must fail with EPIPE, not kill us. */
		signal(SIGPIPE, SIG_IGN);
		r = daemon_run(spec, file, cfg);
		log_flush_suppressed();
	}
	config_free(spec->schema, cfg);
	free(cfg);
	return r;
}

int
daemon_check_file(struct config_check *c, const char *path, const char *file)
{
	int e;

	if (file == NULL || access(file, R_OK) == 0)
		return 0;
	e = errno;
	config_error(c, path, "cannot read '%s': %s", file, strerror(e));
	return -e;
}

int
daemon_check_tls(struct config_check *c, const char *section, const struct tls_config_options *o,
    char *cn, size_t cnlen)
{
	static const char *const names[] = { "ca_file", "cert_file", "key_file", "ciphers", NULL };
	const char *files[] = { o->ca_file, o->cert_file, o->key_file };
	char path[128], err[768];
	const char *why = err;
	int r = 0;

	if (cn != NULL && cnlen > 0)
		cn[0] = '\0';
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s.%s", section, names[i]);
		if (daemon_check_file(c, path, files[i]) != 0)
			r = -EACCES;
	}
	/* Unreadable files are reported above, in the operator's words. */
	if (r != 0 || (r = tls_check_files(o, cn, cnlen, err, sizeof(err))) == 0)
		return r;
	/* tls's words start with the option they are about: report them at its line. */
	snprintf(path, sizeof(path), "%s", section);
	for (int i = 0; names[i] != NULL; i++) {
		size_t n = strlen(names[i]);

		if (strncmp(err, names[i], n) == 0 && (err[n] == ' ' || err[n] == ':')) {
			snprintf(path, sizeof(path), "%s.%s", section, names[i]);
			why = err + n + (err[n] == ':' ? 2 : 1);
			break;
		}
	}
	config_error(c, path, "%s", why);
	return r;
}

/* The name of the user running the check, for messages. */
static const char *
daemon_user(char *buf, size_t len)
{
	struct passwd pw, *res = NULL;
	char tmp[1024];

	if (getpwuid_r(geteuid(), &pw, tmp, sizeof(tmp), &res) == 0 && res != NULL)
		snprintf(buf, len, "%s", pw.pw_name);
	else
		snprintf(buf, len, "uid %ld", (long)geteuid());
	return buf;
}

void
daemon_check_dir(struct config_check *c, const char *path, const char *dir)
{
	char up[PATH_MAX], user[64];
	struct stat st;
	char *slash;

	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			config_error(c, path, "'%s' is not a directory", dir);
		/* access(2), not a test file: --check must leave nothing behind. */
		else if (access(dir, W_OK | X_OK) != 0)
			config_error(c, path, "'%s' is not writable by this user (%s): %s; run --check "
			    "as the daemon's user, and give that user the directory",
			    dir, daemon_user(user, sizeof(user)), strerror(errno));
		return;
	}
	if (errno != ENOENT && errno != ENOTDIR) {
		config_error(c, path, "cannot reach '%s': %s", dir, strerror(errno));
		return;
	}
	/* The daemon creates it with its parents: the nearest existing one decides. */
	snprintf(up, sizeof(up), "%s", dir);
	for (;;) {
		if ((slash = strrchr(up, '/')) == NULL) {
			snprintf(up, sizeof(up), ".");
		} else {
			while (slash > up && slash[-1] == '/')
				slash--;
			slash[slash == up ? 1 : 0] = '\0';
		}
		if (stat(up, &st) == 0)
			break;
		if ((errno != ENOENT && errno != ENOTDIR) || strcmp(up, "/") == 0 ||
		    strcmp(up, ".") == 0) {
			config_error(c, path, "cannot create '%s': '%s': %s", dir, up, strerror(errno));
			return;
		}
	}
	if (!S_ISDIR(st.st_mode))
		config_error(c, path, "cannot create '%s': '%s' is not a directory", dir, up);
	else if (access(up, W_OK | X_OK) != 0)
		config_error(c, path, "cannot create '%s': '%s' is not writable by this user (%s): %s; "
		    "run --check as the daemon's user, and create the directory for it",
		    dir, up, daemon_user(user, sizeof(user)), strerror(errno));
}

/*
 * A name getaddrinfo could look up: labels of letters, digits, '-' and '_'
 * (not DNS's, but /etc/hosts and container names use it).
 */
static bool
daemon_host_name_ok(const char *h)
{
	size_t len = strlen(h), label = 0;
	bool numeric = true;

	if (len == 0 || len > 253)
		return false;
	for (const char *p = h; ; p++) {
		if (*p == '.' || *p == '\0') {
			if (label == 0 && !(*p == '\0' && p > h))
				return false;
			if (label > 0 && (p[-1] == '-' || p[-label] == '-'))
				return false;
			if (*p == '\0')
				break;
			label = 0;
			continue;
		}
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_') || ++label > 63)
			return false;
		numeric &= *p >= '0' && *p <= '9';
	}
	/* 300.1.2.3 is a mistyped IPv4 address, not a name. */
	return !numeric;
}

void
daemon_check_listen(struct config_check *c, const char *path, const struct config_addr *a)
{
	unsigned char buf[sizeof(struct in6_addr)];

	if (a == NULL || a->host == NULL)
		return;
	if (inet_pton(AF_INET, a->host, buf) == 1 || inet_pton(AF_INET6, a->host, buf) == 1 ||
	    daemon_host_name_ok(a->host))
		return;
	config_error(c, path, "'%s' in '%s' is neither an IP address nor a host name", a->host,
	    a->text);
}

void
daemon_default_id(struct config_check *c, char **id)
{
	char host[256];

	if (*id != NULL)
		return;
	if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0') {
		config_error(c, "id", "not set, and the host name is unknown: set id");
		return;
	}
	host[sizeof(host) - 1] = '\0';
	if ((*id = strdup(host)) == NULL)
		abort();
}

/*
 * On SIGHUP: loads the configuration file again as a whole. An invalid one
 * is reported line by line and the running one stays, as nginx does; a
 * valid one is handed to the daemon's reload hook, which applies it.
 */
static void
daemon_reload_check(struct daemon_run *run, const char *what)
{
	const struct config_schema *schema = run->spec->schema;
	const char *file = run->file;
	void *fresh = calloc(1, schema->size);
	char *errors = NULL, *line, *save = NULL;
	size_t len = 0;
	FILE *err;

	if (fresh == NULL || (err = open_memstream(&errors, &len)) == NULL) {
		log_error("SIGHUP: out of memory checking %s", file);
		free(fresh);
		return;
	}
	if (config_load_file(schema, file, fresh, err) == 0) {
		if (run->spec->reload != NULL && !run->stopping) {
			/*
			 * The new format from here on, so that the reload's own
			 * lines already use it; back to the running one if the
			 * hook refuses (read now: the hook may take fresh).
			 */
			enum log_format format = daemon_log_format(run->spec, fresh);

			log_info("SIGHUP: %s is valid; applying it", file);
			log_set_style(format, log_stderr_is_journal());
			if (run->spec->reload(run->ctx, &fresh) != 0) {
				log_set_style(run->log_format, log_stderr_is_journal());
				daemon_reloads.rejected++;
				log_error("SIGHUP: %s was not applied; the running configuration "
				    "stays", file);
			} else {
				daemon_reloads.applied++;
				daemon_reloads.last = (uint64_t)time(NULL);
				run->log_format = format;
			}
		} else {
			daemon_reloads.rejected++;
			log_info("SIGHUP: %s is valid; restart the %s to apply changes", file, what);
		}
	} else {
		daemon_reloads.rejected++;
		fclose(err);
		err = NULL;
		/* Each problem as its own log line, timestamped like the rest. */
		for (line = strtok_r(errors, "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save))
			log_error("SIGHUP: %s", line);
		log_error("SIGHUP: %s is not valid; the running configuration stays", file);
	}
	if (err != NULL)
		fclose(err);
	free(errors);
	if (fresh != NULL) {
		config_free(schema, fresh);
		free(fresh);
	}
}

/* Tells systemd (Type=notify) how the daemon is doing; a no-op without it. */
static void
daemon_notify(const char *state)
{
#ifdef HAVE_SYSTEMD
	sd_notify(0, state);
#else
	(void)state;
#endif
}

static void
daemon_on_signal(uv_signal_t *h, int signum)
{
	struct daemon_run *run = h->data;
	const char *what = strchr(run->spec->progname, '-');

	if (signum == SIGHUP) {
		daemon_reload_check(run, what ? what + 1 : run->spec->progname);
		return;
	}
	if (run->stopping) {
		/*
		 * The operator insists: leave now. Safe by design: the agent's
		 * spool commits are atomic and the relay keeps no durable state.
		 */
		log_warn("SIG%s received again: exiting now without finishing the stop",
		    sigabbrev_np(signum));
		log_flush_suppressed();
		_exit(DAEMON_EXIT_FAILURE);
	}
	log_info("SIG%s received: stopping", sigabbrev_np(signum));
	run->stopping = true;
	daemon_notify("STOPPING=1");
	/* Still handled while the daemon stops, but no longer keeping the loop alive. */
	uv_unref((uv_handle_t *)&run->term);
	uv_unref((uv_handle_t *)&run->intr);
	uv_unref((uv_handle_t *)&run->hup);
	run->spec->stop(run->ctx);
}

static int
daemon_run(const struct daemon_spec *spec, const char *file, void *cfg)
{
	struct daemon_run run = { .spec = spec, .file = file,
		.log_format = daemon_log_format(spec, cfg) };
	uv_signal_t *hs[] = { &run.term, &run.intr, &run.hup };
	const int signums[] = { SIGTERM, SIGINT, SIGHUP };
	int r = 0, code = DAEMON_EXIT_FAILURE;

	if ((r = uv_loop_init(&run.loop)) != 0) {
		log_error("cannot create the event loop: %s", uv_strerror(r));
		return DAEMON_EXIT_FAILURE;
	}
	for (int i = 0; i < 3; i++) {
		uv_signal_init(&run.loop, hs[i]);
		hs[i]->data = &run;
	}
	for (int i = 0; i < 3 && r == 0; i++)
		if ((r = uv_signal_start(hs[i], daemon_on_signal, signums[i])) != 0)
			log_error("cannot handle SIG%s: %s", sigabbrev_np(signums[i]),
			    uv_strerror(r));
	daemon_reloads.last = (uint64_t)time(NULL);
	if (r == 0 && spec->start(&run.loop, file, cfg, &run.ctx) == 0) {
		daemon_notify("READY=1");
		uv_run(&run.loop, UV_RUN_DEFAULT);
		code = spec->finish(run.ctx);
		log_info("stopped");
	}
	for (int i = 0; i < 3; i++)
		uv_close((uv_handle_t *)hs[i], NULL);
	uv_run(&run.loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&run.loop) != 0) {
		/* A handle left open is a bug in its owner. */
		log_error("event loop still has open handles at exit");
		code = DAEMON_EXIT_FAILURE;
	}
	return code;
}

void
daemon_render_reloads(struct metrics_writer *w)
{
	struct metrics_label l = { "result", "applied" };

	metrics_family(w, "logferry_config_reloads_total", "counter",
	    "SIGHUPs by outcome: applied, or rejected (an invalid file, or a change that "
	    "could not be applied: the running configuration stays).");
	metrics_sample(w, &l, 1, daemon_reloads.applied);
	l.value = "rejected";
	metrics_sample(w, &l, 1, daemon_reloads.rejected);
	metrics_one(w, "logferry_config_last_reload_timestamp_seconds", "gauge",
	    "When the running configuration was loaded (at start, or by the last applied "
	    "SIGHUP), in seconds since the epoch.", daemon_reloads.last);
}

int
daemon_raise_nofile(uint64_t *limit)
{
	struct rlimit rl;
	rlim_t was;

	*limit = 0;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -errno;
	if (rl.rlim_cur < rl.rlim_max) {
		was = rl.rlim_cur;
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			log_info("raised the open file limit from %llu to %llu", (unsigned long long)was,
			    (unsigned long long)rl.rlim_cur);
		else if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
			return -errno;
	}
	*limit = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
	return 0;
}
