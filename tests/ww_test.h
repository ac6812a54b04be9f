/* ww_test: the main() every cmocka test program shares. ctest runs each test case as
 * its own ctest test by passing the case name as argv[1] (see tests/CMakeLists.txt). */
#ifndef WW_TEST_H
#define WW_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define WW_TEST_MAIN(tests, setup, teardown)                                                       \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        if (argc > 1) {                                                                            \
            cmocka_set_test_filter(argv[1]);                                                       \
        }                                                                                          \
        return cmocka_run_group_tests(tests, setup, teardown);                                     \
    }

#endif
