/* scratch.h - a unit test's scratch directory under $TMPDIR: made at setup,
 * files written into it, removed with all it holds at teardown. */
#ifndef RC_TEST_SCRATCH_H
#define RC_TEST_SCRATCH_H

#include <stddef.h>

/* Makes a new directory $TMPDIR/<prefix>XXXXXX (/tmp without TMPDIR); its
 * path goes to dir (cap bytes). Fails the test when it cannot. */
void scratch_dir(char *dir, size_t cap, const char *prefix);
/* Writes text to dir/name (created or truncated); returns the file's path,
 * valid until the next call. Fails the test when it cannot. */
const char *scratch_write(const char *dir, const char *name, const char *text);
/* Removes dir and all it holds: 0, or -1 when rm failed. */
int scratch_remove(const char *dir);

#endif
