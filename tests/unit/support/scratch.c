#include "scratch.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

void scratch_dir(char *dir, size_t cap, const char *prefix)
{
    const char *base = getenv("TMPDIR"); /* as mkstemp(3) users expect; /tmp otherwise */
    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    int n = snprintf(dir, cap, "%s/%sXXXXXX", base, prefix);
    assert_true(n > 0 && (size_t)n < cap);
    assert_non_null(mkdtemp(dir));
}

const char *scratch_write(const char *dir, const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

int scratch_remove(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}
