#include "autoconfig.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "common/daemon.h"
#include "common/log.h"

const char *const daemon_log_levels[] = { "error", "warn", "info", "debug", NULL };

struct daemon_signals {
	uv_signal_t term, intr, hup;
	daemon_signal_cb on_stop, on_reload;
	void *arg;
	int open;   /* handles not yet closed */
};

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
	    "  -V, --version       print the version and exit\n"
	    "  -h, --help          print this help and exit\n"
	    "\n"
	    "Runs in the foreground and logs to stderr. SIGTERM or SIGINT stop it cleanly.\n"
	    "Exit status: 0 clean stop, 1 runtime failure, 2 usage or configuration error.\n"
	    "See %s(8) and logferry.yaml(5).\n",
	    spec->progname, spec->summary, spec->default_config, spec->progname);
}

int
daemon_main(const struct daemon_spec *spec, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 't' },
		{ "dump-config", no_argument, NULL, 'T' },
		{ "config-reference", no_argument, NULL, 'R' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *file = spec->default_config;
	int check = 0, dump = 0, ch, r;
	void *cfg;

	while ((ch = getopt_long(argc, argv, "c:tTVh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': file = optarg; break;
		case 't': check = 1; break;
		case 'T': dump = 1; break;
		case 'R':
			/* For the man page build: every key, type, default and help. */
			config_reference(spec->schema, stdout);
			return DAEMON_EXIT_OK;
		case 'V':
			printf("%s %s\n", spec->progname, PACKAGE_VERSION);
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
	} else {
		log_init(spec->progname,
		    (enum log_level) * (int *)((char *)cfg + spec->log_level_offset));
		/* Writes to a closed socket must fail with EPIPE, not kill us. */
		signal(SIGPIPE, SIG_IGN);
		r = spec->run(file, cfg);
		log_flush_suppressed();
	}
	config_free(spec->schema, cfg);
	free(cfg);
	return r;
}

void
daemon_check_file(struct config_check *c, const char *path, const char *file)
{
	if (file != NULL && access(file, R_OK) != 0)
		config_error(c, path, "cannot read '%s': %s", file, strerror(errno));
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

static void
daemon_on_signal(uv_signal_t *h, int signum)
{
	struct daemon_signals *s = h->data;

	if (signum == SIGHUP) {
		if (s->on_reload != NULL)
			s->on_reload(s->arg, signum);
		return;
	}
	s->on_stop(s->arg, signum);
}

static void
daemon_signals_closed(uv_handle_t *h)
{
	struct daemon_signals *s = h->data;

	if (--s->open == 0)
		free(s);
}

int
daemon_signals_start(uv_loop_t *loop, daemon_signal_cb on_stop,
    daemon_signal_cb on_reload, void *arg, struct daemon_signals **out)
{
	struct daemon_signals *s;
	uv_signal_t *hs[3];
	const int signums[3] = { SIGTERM, SIGINT, SIGHUP };
	int r = 0;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return UV_ENOMEM;
	s->on_stop = on_stop;
	s->on_reload = on_reload;
	s->arg = arg;
	hs[0] = &s->term;
	hs[1] = &s->intr;
	hs[2] = &s->hup;
	for (int i = 0; i < 3; i++) {
		uv_signal_init(loop, hs[i]);
		hs[i]->data = s;
		s->open++;
		if (r == 0)
			r = uv_signal_start(hs[i], daemon_on_signal, signums[i]);
	}
	if (r != 0) {
		daemon_signals_close(s);
		return r;
	}
	*out = s;
	return 0;
}

void
daemon_signals_close(struct daemon_signals *s)
{
	if (s == NULL)
		return;
	uv_close((uv_handle_t *)&s->term, daemon_signals_closed);
	uv_close((uv_handle_t *)&s->intr, daemon_signals_closed);
	uv_close((uv_handle_t *)&s->hup, daemon_signals_closed);
}

void
daemon_reload_check(const struct config_schema *schema, const char *file,
    const char *what)
{
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
		log_info("SIGHUP: %s is valid; restart the %s to apply changes", file, what);
	} else {
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
	config_free(schema, fresh);
	free(fresh);
}

void
daemon_notify_ready(void)
{
#ifdef HAVE_SYSTEMD
	sd_notify(0, "READY=1");
#endif
}

void
daemon_notify_stopping(void)
{
#ifdef HAVE_SYSTEMD
	sd_notify(0, "STOPPING=1");
#endif
}
