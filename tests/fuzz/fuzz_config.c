/* fuzz_config.c - libFuzzer driver for the option table's text parsers: the
 * command-line flags (confload_args over every flag RC_OPTIONS generates,
 * with arbitrary values) and the value parsers under them (rc_parse_size,
 * rc_parse_seconds, rc_parse_hostport).
 *
 * Input: NUL-separated words, the first few become argv[1..]; the whole input
 * (NUL-terminated) also goes to each value parser.
 * Checks: a result within the documented set (0, CONFLOAD_HELP/VERSION,
 * RC_E_INVAL with a NUL-terminated message), a value accepted by a
 * flag lies within its row's range, nothing leaks (LSan: rc_config_free).
 *
 * The config-file loader is not fuzzed here: it runs the file as Lua with
 * the standard libraries (os.execute included), so random programs would be
 * a hazard to the machine rather than a test of our code; its C side is
 * covered by tests/unit/test_options.c. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/app/config.c"
#include "../../core/app/confload.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ARGS 8

static void check_ranges(const struct rc_config *c)
{
    for (int i = 0; i < RC_NOPTIONS; i++) {
        const struct rc_option *o = &rc_options[i];
        if (!c->set[i])
            continue;
        const void *p = (const char *)c + o->offset;
        double v;
        switch (o->kind) {
        case RC_OK_INT:
            v = *(const int *)p;
            break;
        case RC_OK_SIZE:
            v = (double)*(const size_t *)p;
            break;
        case RC_OK_NUM:
            v = *(const double *)p;
            break;
        case RC_OK_COUNT:
            v = (double)*(const uint64_t *)p;
            break;
        case RC_OK_SECS:
            if (!(*(const double *)p >= o->min && *(const double *)p <= RC_SECS_MAX))
                abort();
            continue;
        case RC_OK_ENUM: {
            int n = 0;
            while (o->names[n])
                n++;
            if (*(const int *)p < 0 || *(const int *)p >= n)
                abort();
            continue;
        }
        default:
            continue;
        }
        if (!(v >= o->min && v <= o->max))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *buf = malloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = '\0';

    size_t sz;
    double secs;
    char *addr = NULL;
    int port;
    (void)rc_parse_size(buf, &sz);
    if (rc_parse_seconds(buf, &secs) == 0 && !(secs >= 0))
        abort();
    if (rc_parse_hostport(buf, &addr, &port) == 0) {
        if (port < 0 || port > 65535 || addr == NULL)
            abort();
        rc_free(addr);
    }

    char *argv[MAX_ARGS + 2] = {"roomcast"};
    int argc = 1;
    for (size_t i = 0; i < size && argc <= MAX_ARGS;) {
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    argv[argc] = NULL;
    struct rc_config c;
    rc_config_defaults(&c);
    char err[512];
    err[0] = '\0';
    int rc = confload_args(&c, argc, argv, err, sizeof(err));
    if (rc == RC_E_INVAL) {
        if (memchr(err, '\0', sizeof(err)) == NULL || err[0] == '\0')
            abort();
    } else if (rc == 0) {
        check_ranges(&c);
    } else if (rc != CONFLOAD_HELP && rc != CONFLOAD_VERSION) {
        abort();
    }
    rc_config_free(&c);
    free(buf);
    return 0;
}
