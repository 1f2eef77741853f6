/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config: YAML configuration loaded through one table per daemon.
 *
 * A schema is a table of keys with type, bounds, default and help text
 * (docs/style.md 9). config_load parses YAML (libyaml) into a caller-defined
 * struct following the table, checks every value, and reports every problem
 * as `FILE:LINE: key.path: what is wrong`. The same table drives the
 * effective-configuration dump and the reference in the man page.
 *
 * Conventions (logferry.yaml(5) CONVENTIONS): values take ${NAME} and
 * ${NAME:-default} from the environment (upper-case names only: lower-case
 * ones are the relay's templates) and $${ for a literal ${; the .yaml files
 * of FILE.d beside FILE.yaml are merged after it; any value may be
 * {file: /path}.
 */
#ifndef LOGFERRY_CONFIG_H
#define LOGFERRY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum config_type {
	CONFIG_STRING,    /* char *; NULL when absent without default */
	CONFIG_BOOL,      /* bool */
	CONFIG_INT,       /* int64_t */
	CONFIG_SIZE,      /* uint64_t bytes: 4096, 512KiB, 1GiB */
	CONFIG_DURATION,  /* uint64_t milliseconds: 5ms, 30s, 30m, 1h */
	CONFIG_ENUM,      /* int: index into names */
	CONFIG_ADDR,      /* struct config_addr: host:port, or scheme://... */
	CONFIG_LIST,      /* struct config_list of elem */
	CONFIG_MAP,       /* struct config_map: string -> string */
	CONFIG_SECTION,   /* nested mapping, a struct at offset */
};

/* Key flags. */
#define CONFIG_REQUIRED       (1u << 0)  /* must be present */
#define CONFIG_SCALAR_AS_LIST (1u << 1)  /* LIST: a single scalar is a list of one */
#define CONFIG_SPLIT_COMMAS   (1u << 2)  /* LIST: "a,b,c" is three elements */
#define CONFIG_NONEMPTY       (1u << 3)  /* STRING: "" is an error; LIST: [] is an error */
#define CONFIG_PORT_ZERO      (1u << 4)  /* ADDR: port 0 (pick any) is allowed */
#define CONFIG_SECRET         (1u << 5)  /* STRING: a password, only from {file: PATH} */

/* Address schemes, as a bit mask of allowed ones in config_key.schemes. */
enum config_scheme {
	CONFIG_SCHEME_NONE = 0,  /* host:port */
	CONFIG_SCHEME_UDP,       /* udp://host:port */
	CONFIG_SCHEME_TCP,       /* tcp://host:port */
	CONFIG_SCHEME_UNIX,      /* unix:///absolute/path */
	CONFIG_SCHEME_TLS,       /* tls://host:port */
};
#define CONFIG_SCHEMES(s) (1u << (s))

struct config_addr {
	enum config_scheme scheme;
	char *host;      /* without brackets for IPv6; NULL for unix */
	uint16_t port;
	char *path;      /* unix sockets only */
	char *text;      /* as written, for messages */
};

struct config_list {
	size_t n;
	void *items;     /* n elements of the element type's C type */
};

/*
 * Values read from files ({file: PATH}) by key path ("kafka.properties.x"),
 * so that the dump prints the file, never the value.
 */
struct config_secret {
	char *path;
	char *file;
};

struct config_secrets {
	size_t n;
	struct config_secret *items;
};

struct config_map_entry {
	char *key;
	char *value;
	int line;
};

struct config_map {
	size_t n;
	struct config_map_entry *items;
};

struct config_key {
	const char *name;
	enum config_type type;
	size_t offset;                   /* of the value in the parent struct */
	unsigned flags;
	const char *def;                 /* default, written as in YAML; NULL: none */
	int64_t min, max;                /* INT, SIZE, DURATION; both 0: unbounded */
	const char *const *names;        /* ENUM: NULL-terminated names */
	unsigned schemes;                /* ADDR: allowed CONFIG_SCHEMES() */
	const struct config_key *keys;   /* SECTION: children, ended by a NULL name */
	const struct config_key *elem;   /* LIST: the element (name unused, offset 0) */
	size_t size;                     /* SECTION: sizeof its struct (needed in lists) */
	/*
	 * In a section with a discriminator (an ENUM key named by
	 * `discriminator`), a key valid for only some of its values lists them
	 * as a bit mask (1 << value) in `only`; `required_when` likewise.
	 */
	const char *discriminator;
	unsigned only;
	unsigned required_when;
	const char *help;
};

struct config_check;

/*
 * A whole-configuration check run after every key parsed, for rules that
 * span keys. Reports problems with config_error and returns nothing.
 */
typedef void (*config_validate_fn)(struct config_check *c, void *obj);

struct config_schema {
	const char *name;                /* e.g. "agent" */
	const struct config_key *keys;   /* top level, ended by a NULL name */
	size_t size;                     /* sizeof the whole config struct */
	config_validate_fn validate;     /* may be NULL */
	/*
	 * Frees what validate built beside the keys (compiled rules), before
	 * config_free frees the keys. May be NULL.
	 */
	void (*release)(void *obj);
	/*
	 * CONFIG_SECRETS_AT(type, member): where the config struct keeps its
	 * struct config_secrets. 0: nowhere, and {file: PATH} is refused.
	 */
	size_t secrets;
};
#define CONFIG_SECRETS_AT(type, member) (offsetof(type, member) + 1)

/*
 * Loads `file`, then the *.yaml files of its .d directory in name order
 * (listed again at every call, so a reload sees new ones), into obj
 * (schema->size bytes; the function clears it first). Problems are printed
 * to err, one per line, as FILE:LINE: key.path: what, FILE being the file
 * the value came from.
 * Returns 0, -EINVAL if the configuration has errors, or -errno when the file
 * cannot be read (also printed). Whatever it returns, obj must be released
 * with config_free.
 */
int config_load_file(const struct config_schema *schema, const char *file,
    void *obj, FILE *err);

/* The same from memory, without a .d directory; `name` stands for the file name in messages. */
int config_load_string(const struct config_schema *schema, const char *name,
    const char *yaml, size_t len, void *obj, FILE *err);

/* Frees everything config_load allocated in obj. NULL obj is fine. */
void config_free(const struct config_schema *schema, void *obj);

/*
 * Reports a problem found by a validate function: `path` names the key
 * (e.g. "sources[1].paths") and locates the line; the nearest enclosing key
 * present in the file is used when the key itself is absent.
 */
void config_error(struct config_check *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The file being checked, for validators that resolve relative paths. */
const char *config_check_file(const struct config_check *c);

/* Whether the value at `path` was read from a file ({file: PATH}). */
bool config_from_file(const struct config_check *c, const char *path);

/* Whether the key at `path` was written in the file (not defaulted). */
bool config_present(const struct config_check *c, const char *path);

/* Prints the effective configuration (defaults filled in) as YAML. */
void config_dump(const struct config_schema *schema, const void *obj, FILE *out);

/* Prints every key with type, default and help as a man page (roff) list. */
void config_reference(const struct config_schema *schema, FILE *out);

/*
 * Value parsers, shared with code that reads these formats elsewhere.
 * Each returns 0 or -EINVAL / -ERANGE.
 */
int config_parse_size(const char *s, uint64_t *bytes);
int config_parse_duration(const char *s, uint64_t *ms);

/* Formats a size or duration in its largest exact unit ("64MiB", "30m"). */
void config_format_size(uint64_t bytes, char *out, size_t outlen);
void config_format_duration(uint64_t ms, char *out, size_t outlen);

/*
 * Whether two values of key k (at x and y) are the same: every key of a
 * section, element of a list and entry of a map; addresses as written.
 * For a reload, to tell what changed.
 */
bool config_value_equal(const struct config_key *k, const void *x, const void *y);

#endif
