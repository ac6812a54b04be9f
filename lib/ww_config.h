/* ww_config: one declarative table drives a program's YAML file, environment variables,
 * command-line flags, --help, --check-config and --print-config (the idea of Fluent Bit's
 * config_map[] and Redis's static_configs[]).
 *
 * A program describes its configuration struct with an array of ww_cfg_opt_t, one row per
 * key. Keys are dotted paths into the YAML mapping ("sim.pump_fault.flow_factor" is
 * `sim: {pump_fault: {flow_factor: ...}}`). Precedence, lowest first: the row's default,
 * the YAML file, the environment (env_prefix + key upper-cased with '.' -> '_', e.g.
 * WW_AGENT_SIM_SEED), then flags.
 *
 * Every error names where the bad value came from: "agent.yaml:12:5: sim.nodes: 0 is
 * below the minimum 1", "environment WW_AGENT_SIM_SEED: ...", "flag --sim-nodes: ...",
 * and unknown keys are errors, in the file and in the environment (a variable that starts
 * with env_prefix but names no key: "environment WW_AGENT_SIM_SEEDS: unknown key (did you
 * mean WW_AGENT_SIM_SEED?)"), because a typo must not silently mean "default".
 */
#ifndef WW_CONFIG_H
#define WW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    WW_CFG_STRING,   /* char * (heap-allocated, owned by the config; NULL when unset) */
    WW_CFG_INT,      /* int64_t; range [min, max] */
    WW_CFG_DOUBLE,   /* double, must be finite; range [min, max] */
    WW_CFG_BOOL,     /* bool: true/false/yes/no/on/off/1/0 */
    WW_CFG_DURATION, /* int64_t nanoseconds: "250ms", "1s", "1.5s", "5m", "1h", "2d", "500us";
                        a bare number means seconds; range [min, max] in seconds */
    WW_CFG_SIZE,     /* int64_t bytes: "512 KiB", "16MiB", "1 GiB" (B, KiB, MiB, GiB, TiB,
                        PiB: binary units only), or a bare number of bytes; range [min, max]
                        in bytes; help and --print-config show the largest exact unit */
    WW_CFG_STRLIST,  /* ww_cfg_strlist_t: YAML sequence of scalars; from env/flags a
                        comma-separated list */
    WW_CFG_TABLE,    /* ww_cfg_table_t: YAML sequence of mappings, each element described by
                        the `sub` rows (offsets relative to the element); from env/flags and
                        as a default, YAML flow text such as "[{name: a, weight: 1}]" */
    WW_CFG_ENUM,     /* int (or a C enum of int's size whose values are the indices): one of
                        the names `sub` lists, stored as its index; the text is the name,
                        exactly (case matters); a NULL default is the first name. --help
                        lists the names, --print-config prints the name, and a value that is
                        none of them is refused with the list ("...: \"bogus\" is not one
                        of a, b") */
} ww_cfg_type_t;

typedef struct {
    char **v;
    size_t n;
} ww_cfg_strlist_t;

typedef struct {
    void *items; /* n elements of the row's elem_size bytes, zeroed then filled */
    size_t n;
} ww_cfg_table_t;

typedef struct ww_cfg_opt {
    const char *name; /* dotted YAML path */
    ww_cfg_type_t type;
    const char *def;  /* default in the same text syntax as a flag value; NULL: unset/empty */
    size_t offset;    /* offsetof() the field in the config struct (or the table element) */
    double min, max;  /* inclusive numeric range; not checked when min == max == 0 */
    const char *flag; /* long flag without "--" (e.g. "sim-nodes"), or NULL */
    const char *help; /* one line */
    /* WW_CFG_TABLE: the element's rows (const struct ww_cfg_opt *, n_sub of them);
     * WW_CFG_ENUM: the allowed names (const char *const *, NULL-terminated; a value is its
     * index). One field for both, so that rows written positionally keep their layout. */
    const void *sub;
    /* WW_CFG_TABLE only: */
    size_t n_sub;
    size_t elem_size;
    size_t min_items, max_items; /* 0/0: any count */
} ww_cfg_opt_t;

typedef struct {
    const char *program;    /* "waferwatch-agent" */
    const char *summary;    /* one line for --help */
    const char *env_prefix; /* "WW_AGENT_" */
    const ww_cfg_opt_t *opts;
    size_t n_opts;
} ww_cfg_schema_t;

/* Most errors one file reports at once; past it the list ends with a last line
 * "(stopped after 20 errors)". One check must not mask the others, but a file of garbage
 * needs no 10^5 lines. */
#define WW_CFG_MAX_ERRORS 20
#define WW_CFG_MAX_ERRORS_TEXT "20"

/* One or more errors, one per line (no trailing newline), each "WHERE: key: why". */
typedef struct {
    char msg[4096];
} ww_cfg_err_t;

/* Appends one error line to err (a newline first unless err is empty). Past
 * WW_CFG_MAX_ERRORS lines it adds the "(stopped after ...)" line once instead, and then
 * nothing more. Returns the number of lines err now holds. Programs use it for
 * their own checks after a load, so that all errors of a file are reported together. */
int ww_cfg_err_add(ww_cfg_err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The number of error lines in err (0 when empty). */
int ww_cfg_err_count(const ww_cfg_err_t *err);

/* Prints each line of err to out as "program: line" (each line already names its
 * file:line:col, variable or flag). */
void ww_cfg_err_print(const ww_cfg_err_t *err, const char *program, FILE *out);

/* Finds the 1-based line and column of the value at `key` in the YAML text: a dotted path
 * with list indices, as errors spell keys ("phases[1].slos[0].metric", "alertmanager.url";
 * "phases[1]" is the item's mapping). For a program's own checks of a loaded file, so they
 * name file:line:col as the parser's errors do. Returns 0, or -ENOENT when the text does
 * not hold the key (or is not valid YAML); *line and *col are then 0. */
int ww_cfg_locate(const char *text, size_t len, const char *key, size_t *line, size_t *col);

/* Reads a configuration file whole (at most 16 MiB) into *buf (malloc'd, NUL-terminated,
 * the caller frees it) and *len. Returns 0, or a negative errno with err set
 * ("FILE: No such file or directory"). */
int ww_cfg_read_file(const char *path, char **buf, size_t *len, ww_cfg_err_t *err);

typedef enum {
    WW_CFG_RUN = 0, /* start the program */
    WW_CFG_HELP,    /* --help was given: usage printed to stdout */
    WW_CFG_VERSION, /* --version: printed */
    WW_CFG_CHECK,   /* --check-config: config loaded and valid; program may run its own checks */
    WW_CFG_PRINT,   /* --print-config: effective config printed as YAML to stdout */
} ww_cfg_action_t;

/* Sets every row to its default. cfg must be zeroed first. Returns 0 or -EINVAL (err
 * says which default is bad: a programming error). */
int ww_cfg_defaults(const ww_cfg_schema_t *s, void *cfg, ww_cfg_err_t *err);

/* Applies a YAML file over cfg. Returns 0, -ENOENT/-EACCES/... when it cannot be read,
 * or -EINVAL on a syntax, unknown-key, type or range error ("file:line:col: key: why").
 * A file's errors are all reported, one per line (up to WW_CFG_MAX_ERRORS); a syntax
 * error stops the read at once. After -EINVAL, cfg holds the values that were valid (and
 * must still be freed). */
int ww_cfg_load_file(const ww_cfg_schema_t *s, void *cfg, const char *path, ww_cfg_err_t *err);

/* Same from a buffer; `name` stands in for the file name in errors. */
int ww_cfg_load_buffer(const ww_cfg_schema_t *s, void *cfg, const char *text, size_t len,
                       const char *name, ww_cfg_err_t *err);

/* Sets one key from text (flag/env syntax); `origin` prefixes errors ("flag --x").
 * Returns 0, -ENOENT for an unknown key, -EINVAL for a bad value. */
int ww_cfg_set(const ww_cfg_schema_t *s, void *cfg, const char *key, const char *text,
               const char *origin, ww_cfg_err_t *err);

/* Applies every set environment variable env_prefix + KEY. Returns 0, or -EINVAL for a bad
 * value or for a variable that starts with env_prefix but is no key's (err names it and
 * the nearest known variable). A schema without env_prefix reads no environment. */
int ww_cfg_apply_env(const ww_cfg_schema_t *s, void *cfg, ww_cfg_err_t *err);

/* The whole command line: defaults, then --config FILE (or -c FILE), then the
 * environment, then flags (--flag VALUE or --flag=VALUE; a bool flag alone means true).
 * Recognises --help/-h, --version, --check-config, --print-config. Prints usage to stdout
 * for --help and the effective YAML for --print-config. cfg must be zeroed. Returns the
 * action (>= 0) or -EINVAL with err set (unknown flag, missing value, bad value). */
int ww_cfg_parse_args(const ww_cfg_schema_t *s, void *cfg, int argc, char **argv,
                      ww_cfg_err_t *err);

/* Says where the value of `key` that ww_cfg_parse_args(s, cfg, argc, argv, ...) used came
 * from, in the form its own errors use, so a program's later checks of that value can
 * name it the same way: "flag --server-key", "environment WW_COLLECTOR_SECURITY_SERVER_KEY",
 * "collector.yaml:9:15" (the value's line and column in the --config file), or "default".
 * Writes at most cap bytes, NUL-terminated. Returns 0, or -ENOENT when key is no row of s
 * (out then says "default"). Call it only after ww_cfg_parse_args succeeded: it re-reads
 * the file. */
int ww_cfg_origin(const ww_cfg_schema_t *s, int argc, char **argv, const char *key, char *out,
                  size_t cap);

/* Writes usage: every flag and every key with type, default, range and help. */
void ww_cfg_usage(const ww_cfg_schema_t *s, FILE *out);

/* ---- reference: --help's facts as a Markdown page and a man page ----
 * A program's reference is generated from its schema (and, for the man page, from what its
 * ww_cfg_page_t says besides), by the same formatter as --help, so the two never disagree.
 * The programs print it for the hidden flag `--reference markdown|man`; the checked-in
 * docs/reference/ pages and man/ pages are that output (tests/docs/check_reference.sh). */

/* One term of a reference list and what it means: {"3", "stopped with batches unacked"}. */
typedef struct {
    const char *term;
    const char *text;
} ww_cfg_item_t;

/* What a reference page says besides the schema's rows. Lists end with an item whose term
 * is NULL; any field may be NULL (the section is left out). Text is plain: the printers
 * escape it. In `description` a blank line separates paragraphs; other newlines are
 * spaces in Markdown and line breaks roff fills. */
typedef struct {
    const char *synopsis;             /* after the program name; NULL: "[--config FILE] [flags]" */
    const char *description;          /* DESCRIPTION: what the program does */
    const ww_cfg_item_t *commands;    /* COMMANDS (a program with subcommands) */
    const ww_cfg_item_t *environment; /* variables besides the settings' own */
    const ww_cfg_item_t *exit_status; /* EXIT STATUS */
    const ww_cfg_item_t *files;       /* FILES */
    const char *see_also;             /* "waferwatch-collector(1), waferwatch(1)" (man only) */
} ww_cfg_page_t;

typedef enum {
    WW_CFG_REF_MARKDOWN = 1,
    WW_CFG_REF_MAN = 2,
} ww_cfg_ref_t;

/* Looks for the hidden flag `--reference FORMAT` (or --reference=FORMAT) on the command
 * line. It must be the only argument, so that nothing else on the line seems to matter:
 * the program prints the reference and exits 0 without reading a file or starting
 * anything. Returns 0 when the flag is absent, WW_CFG_REF_MARKDOWN or WW_CFG_REF_MAN, or
 * -EINVAL with err set (an unknown format, a missing one, other arguments beside it). */
int ww_cfg_reference_arg(int argc, char **argv, ww_cfg_err_t *err);

/* Writes the Markdown reference of s: a header comment saying it is generated, the title,
 * the summary and page->description, the synopsis, the commands, the general flags (with
 * --reference), every setting as a "### `key`" section (help; type, default, range or
 * allowed values, flag, environment variable; a table's element rows as a table), the
 * environment, the exit status and the files. A program appends its own sections (its
 * metrics) after it. A schema without rows (n_opts 0: a program that does not use the
 * engine) gets no flags, settings or settings' environment. */
void ww_cfg_markdown(const ww_cfg_schema_t *s, const ww_cfg_page_t *page, FILE *out);

/* Writes the man page (roff, section 1) of s: NAME, SYNOPSIS, DESCRIPTION, COMMANDS,
 * OPTIONS (the general flags), SETTINGS (every row, as --help lists it), ENVIRONMENT,
 * EXIT STATUS, FILES, SEE ALSO; the sections without content are left out, as in
 * ww_cfg_markdown. The page has no date, so that it only changes with what it says. */
void ww_cfg_man(const ww_cfg_schema_t *s, const ww_cfg_page_t *page, FILE *out);

/* Writes the effective configuration as a YAML document that ww_cfg_load_file accepts. */
void ww_cfg_print(const ww_cfg_schema_t *s, const void *cfg, FILE *out);

/* Frees every string, list and table the config owns; cfg can be reused after zeroing. */
void ww_cfg_free(const ww_cfg_schema_t *s, void *cfg);

/* One scalar row of a schema table (everything after `help` zero). */
#define WW_CFG_ROW(name, type, def, off, lo, hi, flag, help)                                       \
    {                                                                                              \
        name, type, def, off, lo, hi, flag, help, NULL, 0, 0, 0, 0                                 \
    }

/* One WW_CFG_ENUM row: `names_` is the NULL-terminated list of allowed values, `def_` one of
 * them (NULL: names_[0]). The field at `off` is an int (or an enum of int's size). */
#define WW_CFG_ENUM_ROW(key, names_, def_, off, flag_, help_)                                      \
    {                                                                                              \
        .name = key, .type = WW_CFG_ENUM, .def = def_, .offset = off, .flag = flag_,               \
        .help = help_, .sub = names_                                                               \
    }

#endif
