/* The collector's allowlist parser (collector/ww_auth.c) and the CURVE key files
 * (lib/ww_curve.c). */
#include "ww_allowlist.h"
#include "ww_auth.h"
#include "ww_curve.h"
#include "ww_test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

static int s_parse(const char *text, char *why)
{
    return ww_allowlist_check(text, strlen(text), "allow", why, 256);
}

static void test_allowlist_lines(void **state)
{
    char pub[41], sec[41], why[256], text[512];
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    snprintf(text, sizeof text, "# enrolled agents\n\n%s agent-1 okc1-* okc2-r01-0 # rack 1\n",
             pub);
    assert_int_equal(s_parse(text, why), 0);
    /* errors name the line */
    snprintf(text, sizeof text, "\n%s agent-1\n", pub);
    assert_int_equal(s_parse(text, why), -EINVAL);
    assert_non_null(strstr(why, "allow:2:"));
    assert_int_equal(s_parse("# c\nnot-a-key agent-1 node-*\n", why), -EINVAL);
    assert_non_null(strstr(why, "allow:2:"));
    assert_non_null(strstr(why, "Z85"));
    snprintf(text, sizeof text, "%s a n\n%s b n\n", pub, pub);
    assert_int_equal(s_parse(text, why), -EINVAL);
    assert_non_null(strstr(why, "twice"));
}

static void test_keys_may_contain_a_hash(void **state)
{
    /* Z85 keys may contain '#' (never first: 84 * 85^4 > 2^32): not a comment. */
    char pub[41], sec[41], why[256], text[512];
    for (int tries = 0; tries < 100000; tries++) {
        assert_int_equal(zmq_curve_keypair(pub, sec), 0);
        if (strchr(pub, '#')) {
            break;
        }
    }
    assert_non_null(strchr(pub, '#'));
    snprintf(text, sizeof text, "%s agent-1 node-*\n", pub);
    assert_int_equal(s_parse(text, why), 0);
}

static void test_key_files(void **state)
{
    char dir[] = "/tmp/ww-keys-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char prefix[64], path[80], why[256];
    snprintf(prefix, sizeof prefix, "%s/k", dir);
    ww_curve_key_t gen, pubk, seck;
    assert_int_equal(ww_curve_keygen(prefix, &gen, why, sizeof why), 0);
    /* Never overwrites. */
    ww_curve_key_t again;
    assert_int_equal(ww_curve_keygen(prefix, &again, why, sizeof why), -EEXIST);
    snprintf(path, sizeof path, "%s.key", prefix);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(ww_curve_load(path, 1, &seck, why, sizeof why), 0);
    assert_string_equal(seck.public_z85, gen.public_z85);
    assert_string_equal(seck.secret_z85, gen.secret_z85);
    snprintf(path, sizeof path, "%s.pub", prefix);
    assert_int_equal(ww_curve_load(path, 0, &pubk, why, sizeof why), 0);
    assert_string_equal(pubk.public_z85, gen.public_z85);
    /* The .pub has no secret: said so, before its (by design) open mode is mentioned. */
    assert_int_equal(ww_curve_load(path, 1, &pubk, why, sizeof why), -EINVAL);
    assert_non_null(strstr(why, "this is a public key file"));
    assert_null(strstr(why, "readable by others"));
    snprintf(path, sizeof path, "%s.key", prefix);
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(ww_curve_load(path, 1, &seck, why, sizeof why), -EPERM);
    assert_non_null(strstr(why, "chmod 600"));
    /* A public key that is not the secret's is refused. */
    char pub2[41], sec2[41];
    assert_int_equal(zmq_curve_keypair(pub2, sec2), 0);
    FILE *f = fopen(path, "w");
    fprintf(f, "public = %s\nsecret = %s\n", pub2, gen.secret_z85);
    fclose(f);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(ww_curve_load(path, 1, &seck, why, sizeof why), -EINVAL);
    assert_non_null(strstr(why, "does not match"));
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_allowlist_lines),
    cmocka_unit_test(test_keys_may_contain_a_hash),
    cmocka_unit_test(test_key_files),
};
WW_TEST_MAIN(tests, NULL, NULL)
