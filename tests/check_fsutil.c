/* File helpers: atomic writes replace whole files and leave no temporary
 * behind; reads enforce their size limit and name the file. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "shared/fsutil.h"
#include "tests/fixtures.h"

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

START_TEST(test_atomic_round_trip)
{
    const char *dir = sl_test_tmpdir();
    char path[512];
    sl_err err = {0};
    ck_assert_int_eq(sl_fs_join(path, sizeof path, dir, "state.bin", &err), 0);
    ck_assert_int_eq(sl_fs_write_atomic(path, "first", 5, 0600, &err), 0);
    ck_assert_int_eq(sl_fs_write_atomic(path, "second!", 7, 0600, &err), 0);
    uint8_t *buf = NULL;
    size_t n = 0;
    ck_assert_int_eq(sl_fs_read_all(path, 100, &buf, &n, &err), 0);
    ck_assert_uint_eq(n, 7);
    ck_assert_mem_eq(buf, "second!", 7);
    free(buf);
    ck_assert_int_eq(count_entries(dir), 1); /* no temporary left */
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
}
END_TEST

START_TEST(test_read_limit_and_missing)
{
    const char *dir = sl_test_tmpdir();
    const char *p = sl_test_write(dir, "big", "0123456789", 10);
    uint8_t *buf = (uint8_t *)0x1;
    size_t n = 77;
    sl_err err = {0};
    ck_assert_int_eq(sl_fs_read_all(p, 9, &buf, &n, &err), SL_ELIMIT);
    ck_assert_ptr_nonnull(strstr(err.msg, "big"));
    ck_assert_ptr_eq(buf, (uint8_t *)0x1);
    ck_assert_uint_eq(n, 77);
    ck_assert_int_eq(sl_fs_read_all("/nonexistent/sealora", 9, &buf, &n, &err), SL_ENOTFOUND);
    ck_assert_int_eq(sl_fs_read_all(dir, 9, &buf, &n, &err), SL_EINVAL);
}
END_TEST

START_TEST(test_mkdirs)
{
    const char *dir = sl_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/a/b/c", dir);
    sl_err err = {0};
    ck_assert_int_eq(sl_fs_mkdirs(path, 0700, &err), 0);
    ck_assert_int_eq(sl_fs_mkdirs(path, 0700, &err), 0);
    ck_assert(sl_fs_exists(path));
    snprintf(path, sizeof path, "%s/file", dir);
    sl_test_write(dir, "file", "x", 1);
    ck_assert_int_eq(sl_fs_mkdirs(path, 0700, &err), SL_EINVAL);
}
END_TEST

Suite *fsutil_suite(void)
{
    Suite *s = suite_create("fsutil");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_atomic_round_trip);
    tcase_add_test(core, test_mkdirs);
    suite_add_tcase(s, core);
    TCase *lim = tcase_create("limits");
    tcase_add_test(lim, test_read_limit_and_missing);
    suite_add_tcase(s, lim);
    return s;
}
