/* waferwatch: the operator's command line.
 *
 *   waferwatch keygen NAME     write a CURVE key pair: NAME.key (0600) and NAME.pub
 *   waferwatch slo [--pg CONNINFO] [--json]   phases, capacity, SLOs and firing alerts
 *   waferwatch version
 *   waferwatch help
 */
#include "slo_report.h"
#include "ww_curve.h"

#include <stdio.h>
#include <string.h>

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: waferwatch COMMAND [ARGS]\n"
            "\n"
            "commands:\n"
            "  keygen NAME   write a CURVE key pair: NAME.key (secret, mode 0600) and NAME.pub\n"
            "                (public). The collector's NAME.pub goes to every agent\n"
            "                (security.server_key); each agent's public key goes into the\n"
            "                collector's allowlist with its agent id and node patterns.\n"
            "  slo [--pg CONNINFO] [--json]\n"
            "                per phase: go-live, contracted and delivered MW, power and\n"
            "                thermal figures, every SLO's attainment, error budget and burn\n"
            "                rates, and the firing alerts, as the SLO evaluator last wrote them\n"
            "                (PostgreSQL: CONNINFO or the PG* environment). Exit 0 ok, 1 when\n"
            "                an alert of severity page is firing, 2 on error.\n"
            "  version       print the version\n"
            "  help          this text\n");
}

static int s_keygen(int argc, char **argv)
{
    if (argc != 3 || argv[2][0] == '-') {
        fprintf(stderr, "usage: waferwatch keygen NAME   (writes NAME.key and NAME.pub)\n");
        return 2;
    }
    ww_curve_key_t key;
    char why[512];
    if (ww_curve_keygen(argv[2], &key, why, sizeof why) < 0) {
        fprintf(stderr, "waferwatch keygen: %s\n", why);
        return 1;
    }
    printf("wrote %s.key (secret, mode 0600) and %s.pub\npublic key: %s\n", argv[2], argv[2],
           key.public_z85);
    memset(&key, 0, sizeof key);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        s_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "keygen") == 0) {
        return s_keygen(argc, argv);
    }
    if (strcmp(argv[1], "slo") == 0) {
        return ww_slo_report_main(argc, argv);
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("waferwatch %s\n", WW_VERSION);
        return 0;
    }
    fprintf(stderr, "waferwatch: unknown command \"%s\" (see waferwatch help)\n", argv[1]);
    return 2;
}
