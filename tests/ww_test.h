/* ww_test: the main() every cmocka test program shares. ctest runs each test case as
 * its own ctest test by passing the case name as argv[1] (see tests/CMakeLists.txt). */
#ifndef WW_TEST_H
#define WW_TEST_H

#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

/* Removes a test's scratch directory and the files in it (one level: what a spool or a
 * run log writes). */
static inline void ww_test_rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            char p[512];
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* Writes text into root/rel, making rel's directories: fixture trees (a sysfs laid out as
 * the kernel's). */
static inline void ww_test_put_file(const char *root, const char *rel, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
            *p = '/';
        }
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* splitmix64: a deterministic PRNG, so every run checks the same sequences. */
static inline uint64_t ww_test_rng_next(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Uniform in (0, 1). */
static inline double ww_test_rng_unit(uint64_t *s)
{
    return ((double)(ww_test_rng_next(s) >> 11) + 0.5) * 0x1p-53;
}

/* qsort's comparison of doubles, ascending (for exact quantiles of raw values). */
static inline int ww_test_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define WW_TEST_MAIN(tests, setup, teardown)                                                       \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        if (argc > 1) {                                                                            \
            cmocka_set_test_filter(argv[1]);                                                       \
        }                                                                                          \
        return cmocka_run_group_tests(tests, setup, teardown);                                     \
    }

#endif
