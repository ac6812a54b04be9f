/* waferwatch: the operator's command line.
 *
 *   waferwatch keygen NAME     write a CURVE key pair: NAME.key (0600) and NAME.pub
 *   waferwatch enroll PUBFILE AGENT_ID [NODE_PATTERN...]   print the agent's allowlist line
 *   waferwatch slo [--pg CONNINFO] [--json]   phases, capacity, SLOs and firing alerts
 *   waferwatch sensors [--root DIR]   the host's hwmon and powercap sensors, read now
 *   waferwatch version
 *   waferwatch help
 */
#include "ww_allowlist.h"
#include "ww_config.h"
#include "ww_curve.h"
#include "ww_sensors.h"
#include "ww_slo_report.h"
#include "ww_version.h"

#include <fnmatch.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define S_ENROLL_MAX_PATTERNS 64

/* The commands as `waferwatch help` lists them and the man page says them: one table, so
 * the two never disagree. The text is wrapped for help's 16-column indent. */
static const ww_cfg_item_t s_help_commands[] = {
    {"keygen NAME", "write a CURVE key pair: NAME.key (secret, mode 0600) and NAME.pub\n"
                    "(public); NAME may end in .key. The collector's NAME.pub goes to\n"
                    "every agent (security.server_key); each agent's public key goes\n"
                    "into the collector's allowlist (see enroll)."},
    {"enroll PUBFILE AGENT_ID [NODE_PATTERN...]",
     "print the allowlist line that enrolls the agent whose public key\n"
     "is in PUBFILE (its NAME.pub) as AGENT_ID (its agent.id), allowed\n"
     "to write the nodes matching the fnmatch patterns (default: AGENT_ID\n"
     "and AGENT_ID-*). A pattern STEM-* also allows STEM, the node id of\n"
     "a one-node agent (sim.nodes 1, agent.source reqlog). Append the\n"
     "line to the allowlist; exit 2 (and no line) on any error."},
    {"slo [--pg CONNINFO] [--json]",
     "per phase: go-live, contracted and delivered MW, power and\n"
     "thermal figures, every SLO's attainment, error budget and burn\n"
     "rates, and the firing alerts, as the SLO evaluator last wrote them\n"
     "(PostgreSQL: CONNINFO or the PG* environment). Exit 0 ok, 1 when\n"
     "an alert of severity page is firing, 2 on error."},
    {"sensors [--root DIR]", "list this host's power and temperature sensors (Linux hwmon and\n"
                             "powercap/RAPL under DIR/sys/class, DIR default /) by the names the\n"
                             "agent's host sources use, with each one's place, value now and\n"
                             "critical limit; energy counters are read 0.5 s apart as watts."},
    {"version", "print the version"},
    {"help", "this text"},
    {NULL, NULL},
};

static void s_usage(FILE *out)
{
    fputs("usage: waferwatch COMMAND [ARGS]\n\ncommands:\n", out);
    for (const ww_cfg_item_t *c = s_help_commands; c->term; c++) {
        /* A short synopsis shares its line with the text's first line. */
        bool inline_text = strlen(c->term) < 14;
        fprintf(out, "  %-*s", inline_text ? 14 : 0, c->term);
        for (const char *line = c->text; *line;) {
            size_t len = strcspn(line, "\n");
            if (line == c->text && inline_text) {
                fprintf(out, "%.*s\n", (int)len, line);
            } else {
                fprintf(out, "%s%16s%.*s\n", line == c->text ? "\n" : "", "", (int)len, line);
            }
            line += len + (line[len] == '\n');
        }
    }
}

/* waferwatch --reference man: the man page, from the same table. */
static const ww_cfg_item_t s_ref_exit[] = {
    {"0", "the command succeeded (slo: no alert of severity page is firing)"},
    {"1", "the command failed (keygen: the files could not be written); slo: an alert of "
          "severity page is firing"},
    {"2", "a usage error, a bad argument or file (enroll prints no line then), or slo could "
          "not read PostgreSQL"},
    {NULL, NULL},
};

static const ww_cfg_item_t s_ref_env[] = {
    {"PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSFILE, ...",
     "libpq's variables: where slo reads, for whatever --pg leaves out"},
    {NULL, NULL},
};

static const ww_cfg_item_t s_ref_files[] = {
    {"/etc/waferwatch/keys", "where the keys are kept (NAME.key, NAME.pub)"},
    {"/etc/waferwatch/allowlist", "the collector's enrolled agents: lines from enroll"},
    {NULL, NULL},
};

static int s_reference(int format)
{
    static const ww_cfg_schema_t schema = {
        .program = "waferwatch",
        .summary = "the waferwatch operator's command line: keys, enrollment, SLO reports",
    };
    static const ww_cfg_page_t page = {
        .synopsis = "COMMAND [ARGS]",
        .description = "waferwatch makes the CURVE key pairs agents and collectors "
                       "authenticate with, prints the allowlist line that enrolls an agent, "
                       "and reports each phase's capacity, power, thermal figures, SLO "
                       "attainment and firing alerts from PostgreSQL. Each command takes "
                       "--help.",
        .commands = s_help_commands,
        .environment = s_ref_env,
        .exit_status = s_ref_exit,
        .files = s_ref_files,
        .see_also = "waferwatch-agent(1), waferwatch-collector(1)",
    };
    if (format == WW_CFG_REF_MARKDOWN) {
        ww_cfg_markdown(&schema, &page, stdout);
    } else {
        ww_cfg_man(&schema, &page, stdout);
    }
    return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
}

static bool s_is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0 || strcmp(arg, "help") == 0;
}

static int s_keygen(int argc, char **argv)
{
    static const char usage[] =
        "usage: waferwatch keygen NAME\n"
        "writes a CURVE key pair: NAME.key (public and secret halves, mode 0600) and NAME.pub\n"
        "(the public half, mode 0644); NAME may end in .key or .pub. Existing files are\n"
        "never overwritten.\n";
    if (argc == 3 && s_is_help(argv[2])) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc != 3 || argv[2][0] == '-' || argv[2][0] == '\0') {
        fputs(usage, stderr);
        return 2;
    }
    ww_curve_key_t key;
    char why[512];
    if (ww_curve_keygen(argv[2], &key, why, sizeof why) < 0) {
        fprintf(stderr, "waferwatch keygen: %s\n", why);
        return 1;
    }
    int stem = (int)ww_curve_stem_len(argv[2]);
    printf("wrote %.*s.key (secret, mode 0600) and %.*s.pub\npublic key: %s\n", stem, argv[2], stem,
           argv[2], key.public_z85);
    memset(&key, 0, sizeof key);
    return 0;
}

/* A word of an allowlist line: not empty, no blanks, not a comment. */
static bool s_word_ok(const char *w)
{
    return w[0] != '\0' && w[0] != '#' && strcspn(w, " \t\r\n") == strlen(w);
}

/* True when some pattern of v[0..n) matches node. */
static bool s_matched(char *const *v, size_t n, const char *node)
{
    for (size_t i = 0; i < n; i++) {
        if (fnmatch(v[i], node, 0) == 0) {
            return true;
        }
    }
    return false;
}

/* The node patterns of one allowlist line. */
typedef struct {
    char *given[S_ENROLL_MAX_PATTERNS];
    char *out[2 * S_ENROLL_MAX_PATTERNS]; /* given, each STEM-* preceded by its STEM if needed */
    char stems[S_ENROLL_MAX_PATTERNS][160];
    char def_glob[160];
    size_t n_given, n_out;
} s_patterns_t;

/* The patterns from argv[4..] (default: AGENT and AGENT-*), then the stems that a one-node
 * agent writes and none of them matches: "okc1-h1-r01-*" does not match "okc1-h1-r01", the
 * node id of the agent whose node.id is its own name. Returns 0, or 2 with the error
 * printed. */
static int s_enroll_patterns(const char *agent, int argc, char **argv, s_patterns_t *p)
{
    memset(p, 0, sizeof *p);
    if (argc == 4) {
        snprintf(p->def_glob, sizeof p->def_glob, "%s-*", agent);
        p->given[p->n_given++] = (char *)agent;
        p->given[p->n_given++] = p->def_glob;
    }
    for (int i = 4; i < argc; i++) {
        if (p->n_given == S_ENROLL_MAX_PATTERNS) {
            fprintf(stderr, "waferwatch enroll: more than %d node patterns\n",
                    S_ENROLL_MAX_PATTERNS);
            return 2;
        }
        if (!s_word_ok(argv[i]) || strlen(argv[i]) >= sizeof p->stems[0]) {
            fprintf(stderr,
                    "waferwatch enroll: node pattern \"%s\": must be a glob without blanks, not "
                    "starting with #\n",
                    argv[i]);
            return 2;
        }
        p->given[p->n_given++] = argv[i];
    }
    for (size_t i = 0; i < p->n_given; i++) {
        const char *g = p->given[i];
        size_t len = strlen(g);
        if (len > 2 && strcmp(g + len - 2, "-*") == 0 && strcspn(g, "*?[\\") == len - 1) {
            char *stem = p->stems[i];
            snprintf(stem, sizeof p->stems[i], "%.*s", (int)(len - 2), g);
            if (!s_matched(p->given, p->n_given, stem) && !s_matched(p->out, p->n_out, stem)) {
                fprintf(stderr,
                        "waferwatch enroll: also allowing node %s (a one-node agent's own id: "
                        "%s does not match it)\n",
                        stem, g);
                p->out[p->n_out++] = stem;
            }
        }
        p->out[p->n_out++] = p->given[i];
    }
    return 0;
}

static int s_enroll(int argc, char **argv)
{
    static const char usage[] =
        "usage: waferwatch enroll PUBFILE AGENT_ID [NODE_PATTERN...]\n"
        "prints the allowlist line for the agent whose public key is in PUBFILE, enrolled as\n"
        "AGENT_ID (its agent.id) for the nodes matching the patterns (default: AGENT_ID and\n"
        "AGENT_ID-*); a pattern STEM-* also allows STEM, a one-node agent's own node id.\n"
        "  waferwatch enroll /etc/waferwatch/keys/agent.pub okc1-h1-r01 'okc1-h1-r01-*' \\\n"
        "      >>/etc/waferwatch/allowlist\n";
    if (argc == 3 && s_is_help(argv[2])) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc < 4 || argv[2][0] == '-') {
        fputs(usage, stderr);
        return 2;
    }
    /* Every error is exit 2 and no output on stdout, so `>>allowlist` appends nothing. */
    ww_curve_key_t key;
    char why[1024];
    if (ww_curve_load(argv[2], 0, &key, why, sizeof why) < 0) {
        fprintf(stderr, "waferwatch enroll: %s\n", why);
        return 2;
    }
    const char *agent = argv[3];
    if (!s_word_ok(agent) || strlen(agent) > 128) {
        fprintf(stderr,
                "waferwatch enroll: agent id \"%s\": must be 1 to 128 bytes without blanks, "
                "not starting with #\n",
                agent);
        return 2;
    }
    s_patterns_t p;
    if (s_enroll_patterns(agent, argc, argv, &p) != 0) {
        return 2;
    }
    char line[16384];
    size_t used = (size_t)snprintf(line, sizeof line, "%s %s", key.public_z85, agent);
    for (size_t i = 0; i < p.n_out && used < sizeof line; i++) {
        used += (size_t)snprintf(line + used, sizeof line - used, " %s", p.out[i]);
    }
    /* The collector's own parser has the last word on the line. */
    if (used >= sizeof line - 1 ||
        ww_allowlist_check(line, strlen(line), "the line", why, sizeof why) < 0) {
        fprintf(stderr, "waferwatch enroll: %s\n", used >= sizeof line - 1 ? "line too long" : why);
        return 2;
    }
    printf("%s\n", line);
    return 0;
}

static int s_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("waferwatch %s\n", WW_VERSION);
    return 0;
}

/* The commands: one row each, so a name is compared in one place. */
static const struct {
    const char *name, *alias;
    int (*run)(int argc, char **argv);
} s_commands[] = {
    {"keygen", NULL, s_keygen},          {"enroll", NULL, s_enroll},
    {"slo", NULL, ww_slo_report_main},   {"sensors", NULL, ww_sensors_main},
    {"version", "--version", s_version},
};

int main(int argc, char **argv)
{
    ww_cfg_err_t err = {{0}};
    int ref = ww_cfg_reference_arg(argc, argv, &err);
    if (ref != 0) {
        if (ref < 0) {
            ww_cfg_err_print(&err, "waferwatch", stderr);
        }
        return ref < 0 ? 2 : s_reference(ref);
    }
    if (argc < 2 || s_is_help(argv[1])) {
        s_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++) {
        if (strcmp(argv[1], s_commands[i].name) == 0 ||
            (s_commands[i].alias && strcmp(argv[1], s_commands[i].alias) == 0)) {
            return s_commands[i].run(argc, argv);
        }
    }
    fprintf(stderr, "waferwatch: unknown command \"%s\" (see waferwatch help)\n", argv[1]);
    return 2;
}
