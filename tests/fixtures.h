/* tests/fixtures.h - helpers the Check suites share: temporary folders that
 * clean themselves up, seeded random data, and a path to the built binaries.
 * Not thread-safe. */
#ifndef SL_TEST_FIXTURES_H
#define SL_TEST_FIXTURES_H
#include <stddef.h>
#include <stdint.h>

/* Creates a fresh folder under $TMPDIR (or /tmp); returns a static path
 * valid until the next call. Removed at process exit. */
const char *sl_test_tmpdir(void);
/* Deterministic generator for test inputs (splitmix64): not for secrets. */
typedef struct sl_test_rng { uint64_t s; } sl_test_rng;
uint64_t sl_test_rand(sl_test_rng *r);
float sl_test_randf(sl_test_rng *r); /* uniform in [-1, 1) */
void sl_test_fill(sl_test_rng *r, float *x, size_t n, float scale);
/* Writes n bytes to dir/name; returns a static full path. */
const char *sl_test_write(const char *dir, const char *name, const void *buf, size_t n);

#endif
