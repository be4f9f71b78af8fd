/* `sealora-audit epsilon` front end: a schedule file composes exactly like
 * the accountant called round by round; grids by name; malformed schedules
 * are refused with the file and line and leave the accountant untouched. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "audit/cmd_epsilon.h"
#include "tests/fixtures.h"

START_TEST(test_schedule_equals_accountant)
{
    sl_test_rng rng = {77};
    char text[4096];
    size_t off = 0;
    static sl_acct want, got;
    sl_acct_init(&want);
    sl_acct_init(&got);
    sl_err err = {0};
    off += (size_t)snprintf(text + off, sizeof text - off, "# q sigma steps\n\n");
    for (int r = 0; r < 10; r++) {
        double q = 0.001 + 0.1 * (sl_test_randf(&rng) + 1);
        double s = 0.8 + (sl_test_randf(&rng) + 1);
        unsigned steps = 1 + (unsigned)(sl_test_rand(&rng) % 20);
        off += (size_t)snprintf(text + off, sizeof text - off,
                                r % 2 ? "%.17g, %.17g, %u  # round %d\n" : "%.17g\t%.17g %u\r\n",
                                q, s, steps, r);
        ck_assert_int_eq(sl_acct_add_sgm(&want, q, s, steps, &err), 0);
    }
    off += (size_t)snprintf(text + off, sizeof text - off, "0.5 2"); /* no newline, 1 step */
    ck_assert_int_eq(sl_acct_add_sgm(&want, 0.5, 2, 1, &err), 0);
    uint64_t rounds = 0;
    ck_assert_int_eq(sl_cmd_epsilon_schedule(text, off, "s.txt", &got, &rounds, &err), 0);
    ck_assert_uint_eq(rounds, 11);
    ck_assert_uint_eq(got.steps, want.steps);
    for (size_t i = 0; i < got.n; i++)
        ck_assert(got.rdp[i] == want.rdp[i]);
}
END_TEST

START_TEST(test_grids)
{
    static sl_acct a;
    sl_err err = {0};
    ck_assert_int_eq(sl_cmd_epsilon_grid("opacus", &a, &err), 0);
    ck_assert_uint_eq(a.n, 99 + 52);
    ck_assert_int_eq(sl_cmd_epsilon_grid("tf", &a, &err), 0);
    ck_assert_uint_eq(a.n, 10 + 59 + 3);
    ck_assert(a.orders[a.n - 1] == 512);
    ck_assert_int_eq(sl_cmd_epsilon_grid("2,2.5,32", &a, &err), 0);
    ck_assert_uint_eq(a.n, 3);
    ck_assert(a.orders[1] == 2.5);
    ck_assert_int_eq(sl_cmd_epsilon_grid(NULL, &a, &err), 0);
    ck_assert_uint_eq(a.n, 286);
}
END_TEST

START_TEST(test_schedule_limits)
{
    static sl_acct a;
    sl_acct_init(&a);
    sl_err err = {0};
    uint64_t rounds = 99;
    char line[400];
    memset(line, ' ', sizeof line);
    memcpy(line, "0.1 1", 5);
    line[sizeof line - 1] = '\n';
    ck_assert_int_eq(sl_cmd_epsilon_schedule(line, sizeof line, "f", &a, &rounds, &err),
                     SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "f:1: line longer"));
    ck_assert_int_eq(sl_cmd_epsilon_grid("2,3,4,5,6,7,8,9,10,11,12,1", &a, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "order #11"));
    ck_assert_uint_eq(rounds, 99);
}
END_TEST

START_TEST(test_schedule_malformed)
{
    static const struct { const char *text; const char *msg; } bad[] = {
        {"0.1 1 5 7\n", "f:1: more than 3 fields"},
        {"0.1\n", "f:1: expected"},
        {"\n0.1 x\n", "f:2: field 2"},
        {"0.1 1 2.5\n", "steps 2.5"},
        {"0.1 1 -3\n", "steps -3"},
        {"1.5 1\n", "f:1: sampling probability q = 1.5"},
        {"0.1 -1\n", "f:1: noise multiplier"},
        {"0.1 nan\n", "field 2"},
        {"# only comments\n\n", "no rounds"},
        {"0.1 1e400\n", "field 2"},
    };
    static sl_acct a, before;
    sl_acct_init(&a);
    before = a;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_err err = {0};
        uint64_t rounds = 7;
        ck_assert_int_ne(sl_cmd_epsilon_schedule(bad[i].text, strlen(bad[i].text), "f", &a,
                                                 &rounds, &err), 0);
        ck_assert_msg(strstr(err.msg, bad[i].msg), "'%s': message '%s' lacks '%s'", bad[i].text,
                      err.msg, bad[i].msg);
        ck_assert_uint_eq(rounds, 7);
        ck_assert_mem_eq(&a, &before, sizeof a);
    }
    /* A NUL inside a line is refused, not read as an end. */
    const char nul[] = "0.1 1\n0.2\0 1\n";
    sl_err err = {0};
    uint64_t rounds = 0;
    ck_assert_int_eq(sl_cmd_epsilon_schedule(nul, sizeof nul - 1, "f", &a, &rounds, &err),
                     SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "f:2: NUL"));
    /* Every prefix of a valid schedule parses or fails cleanly. */
    const char ok[] = "0.01 1.1 100\n0.02, 0.9, 3 # x\n";
    for (size_t cut = 0; cut <= sizeof ok - 1; cut++) {
        sl_acct_init(&a);
        (void)sl_cmd_epsilon_schedule(ok, cut, "f", &a, &rounds, &err);
    }
}
END_TEST

Suite *cmd_epsilon_suite(void)
{
    Suite *s = suite_create("cmd_epsilon");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_schedule_equals_accountant);
    tcase_add_test(core, test_grids);
    suite_add_tcase(s, core);
    TCase *lim = tcase_create("limits");
    tcase_add_test(lim, test_schedule_limits);
    suite_add_tcase(s, lim);
    TCase *bad = tcase_create("malformed");
    tcase_add_test(bad, test_schedule_malformed);
    suite_add_tcase(s, bad);
    return s;
}
