#include "config.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "defs.h"
#include "err.h"
#include "log.h"

void rc_config_set_str(char **slot, const char *s)
{
    rc_free(*slot);
    *slot = s ? rc_xstrdup(s) : NULL;
}

#define RC_OPT_NAME(c, name) name,
const char *const rc_names_slow[] = {RC_ENUM_slow(RC_OPT_NAME) NULL};
const char *const rc_names_level[] = {RC_ENUM_level(RC_OPT_NAME) NULL};
const char *const rc_names_accept[] = {RC_ENUM_accept(RC_OPT_NAME) NULL};
const char *const rc_names_ratepolicy[] = {RC_ENUM_ratepolicy(RC_OPT_NAME) NULL};
const char *const rc_names_store[] = {RC_ENUM_store(RC_OPT_NAME) NULL};
const char *const rc_names_bus[] = {RC_ENUM_bus(RC_OPT_NAME) NULL};
const char *const rc_names_storeerr[] = {RC_ENUM_storeerr(RC_OPT_NAME) NULL};
const char *const rc_names_clock[] = {RC_ENUM_clock(RC_OPT_NAME) NULL};
#undef RC_OPT_NAME
/* log.h owns enum rc_log_level; its order must be the name list's. */
_Static_assert(RC_LOG_DEBUG == 0 && RC_LOG_INFO == 1 && RC_LOG_WARN == 2 && RC_LOG_ERROR == 3,
               "RC_ENUM_level follows enum rc_log_level");

/* ------------------------------------------------------------------------
 * the SIGHUP snapshot
 * ------------------------------------------------------------------------ */

static _Atomic(struct rc_live *) live_cur;

/* Copy, compare and free, per TYPE; only LIVE rows expand (a LIVE option
 * may be a number, BOOL, ENUM, STR or OPTSTR). */
#define LV_ROW(name, type, field, def, min, max, scope, ...) LV_##scope(type, field)
#define LV_BOOT(type, field)
#define LV_CLI(type, field)
#define LV_LIVE(type, field) LV_OP_##type(field)

#define LV_OP_INT LV_SCALAR
#define LV_OP_BOOL LV_SCALAR
#define LV_OP_SIZE LV_SCALAR
#define LV_OP_SECS LV_SCALAR
#define LV_OP_NUM LV_SCALAR
#define LV_OP_COUNT LV_SCALAR
#define LV_OP_ENUM_slow LV_SCALAR
#define LV_OP_ENUM_level LV_SCALAR
#define LV_OP_ENUM_accept LV_SCALAR
#define LV_OP_ENUM_ratepolicy LV_SCALAR
#define LV_OP_ENUM_store LV_SCALAR
#define LV_OP_ENUM_bus LV_SCALAR
#define LV_OP_STR LV_STRING
#define LV_OP_OPTSTR LV_STRING

static struct rc_live *live_new(const struct rc_config *c)
{
    struct rc_live *n = rc_xcalloc(1, sizeof(*n));
#define LV_SCALAR(f) n->f = c->f;
#define LV_STRING(f) n->f = c->f ? rc_xstrdup(c->f) : NULL;
    RC_OPTIONS(LV_ROW)
#undef LV_SCALAR
#undef LV_STRING
    return n;
}

static int str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static int live_equal(const struct rc_live *a, const struct rc_live *b)
{
    int eq = 1;
#define LV_SCALAR(f) eq &= a->f == b->f;
#define LV_STRING(f) eq &= str_eq(a->f, b->f);
    RC_OPTIONS(LV_ROW)
#undef LV_SCALAR
#undef LV_STRING
    return eq;
}

static void live_free(const struct rc_live *l)
{
#define LV_SCALAR(f)
#define LV_STRING(f) rc_free(l->f);
    RC_OPTIONS(LV_ROW)
#undef LV_SCALAR
#undef LV_STRING
    rc_free((void *)l);
}

int rc_live_publish(const struct rc_config *c)
{
    struct rc_live *n = live_new(c);
    struct rc_live *old = atomic_load_explicit(&live_cur, memory_order_relaxed);
    if (old && live_equal(old, n)) {
        live_free(n);
        return 0;
    }
    n->older = old;
    /* release: a reader that sees n sees its fields written. */
    atomic_store_explicit(&live_cur, n, memory_order_release);
    rc_log_set_level((enum rc_log_level)n->log_level);
    return 1;
}

const struct rc_live *rc_live_get(void)
{
    return atomic_load_explicit(&live_cur, memory_order_acquire);
}

void rc_live_shutdown(void)
{
    const struct rc_live *l = atomic_exchange(&live_cur, NULL);
    while (l) {
        const struct rc_live *older = l->older;
        live_free(l);
        l = older;
    }
}

int rc_parse_size(const char *s, size_t *out)
{
    if (s == NULL || !isdigit((unsigned char)*s))
        return RC_E_INVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return RC_E_INVAL;
    unsigned long long mul = 1;
    if (*end == 'k' || *end == 'K')
        mul = 1024ULL, end++;
    else if (*end == 'm' || *end == 'M')
        mul = 1024ULL * 1024, end++;
    else if (*end == 'g' || *end == 'G')
        mul = 1024ULL * 1024 * 1024, end++;
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end != '\0')
        return RC_E_INVAL;
    if (v > (unsigned long long)SIZE_MAX / mul)
        return RC_E_INVAL;
    *out = (size_t)(v * mul);
    return 0;
}

int rc_parse_seconds(const char *s, double *out)
{
    if (s == NULL || !(isdigit((unsigned char)*s) || *s == '.'))
        return RC_E_INVAL;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return RC_E_INVAL;
    if (strcmp(end, "ms") == 0)
        v /= 1000;
    else if (strcmp(end, "m") == 0)
        v *= 60;
    else if (strcmp(end, "h") == 0)
        v *= 3600;
    else if (strcmp(end, "d") == 0)
        v *= 86400;
    else if (*end != '\0' && strcmp(end, "s") != 0)
        return RC_E_INVAL;
    *out = v;
    return 0;
}

int rc_parse_hostport(const char *s, char **addr, int *port)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon[1] == '\0')
        return RC_E_INVAL;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535)
        return RC_E_INVAL;
    const char *a = s;
    size_t alen = (size_t)(colon - s);
    if (alen >= 2 && a[0] == '[' && a[alen - 1] == ']') {
        a++;
        alen -= 2;
    } else if (memchr(a, ':', alen) != NULL) {
        return RC_E_INVAL; /* an IPv6 address needs brackets */
    }
    *addr = alen ? rc_xstrndup(a, alen) : rc_xstrdup("0.0.0.0");
    *port = (int)p;
    return 0;
}
