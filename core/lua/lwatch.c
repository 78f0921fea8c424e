#include "lwatch.h"

#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "config.h"
#include "log.h"

#define LWATCH_MAX (2 * (2 + RC_MAX_PLUGINS + RC_MAX_ROUTES))

struct lwatch {
    struct ev_loop *loop;
    void (*cb)(void *ud);
    void *ud;
    ev_timer debounce;
    int n;
    ev_stat st[LWATCH_MAX];
    char *paths[LWATCH_MAX];     /* owned: ev_stat keeps the pointer */
    uint64_t dir_fp[LWATCH_MAX]; /* a directory's *.lua fingerprint; 0 for a file */
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* Names, sizes, inodes and mtimes of the *.lua files in dir, folded into one
 * number that does not depend on readdir's order; never 0. */
static uint64_t lua_fingerprint(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 1;
    uint64_t sum = 2;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".lua") != 0)
            continue;
        struct stat sb;
        if (fstatat(dirfd(d), e->d_name, &sb, 0) != 0)
            continue;
        uint64_t h = fnv(0xcbf29ce484222325ull, e->d_name, n);
        h = fnv(h, &sb.st_size, sizeof(sb.st_size));
        h = fnv(h, &sb.st_ino, sizeof(sb.st_ino));
        h = fnv(h, &sb.st_mtim.tv_sec, sizeof(sb.st_mtim.tv_sec));
        h = fnv(h, &sb.st_mtim.tv_nsec, sizeof(sb.st_mtim.tv_nsec));
        sum += h;
    }
    closedir(d);
    return sum ? sum : 1;
}

static void on_debounce(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct lwatch *lw = t->data;
    rc_info("script files changed: reloading");
    lw->cb(lw->ud);
}

static void on_change(struct ev_loop *loop, ev_stat *st, int revents)
{
    (void)revents;
    struct lwatch *lw = st->data;
    /* A directory's mtime also moves when an editor drops a swap file: only
     * real changes of a watched file or its directory count, and a burst of
     * them gives one reload. */
    if (st->attr.st_mtime == st->prev.st_mtime && st->attr.st_ino == st->prev.st_ino &&
        st->attr.st_size == st->prev.st_size && st->attr.st_nlink == st->prev.st_nlink &&
        st->attr.st_mtim.tv_nsec == st->prev.st_mtim.tv_nsec)
        return;
    /* A directory changes whenever any file in it does (a log, a socket, an
     * editor's swap file): it counts only when its Lua files changed. */
    int i = (int)(st - lw->st);
    if (lw->dir_fp[i]) {
        uint64_t fp = lua_fingerprint(lw->paths[i]);
        if (fp == lw->dir_fp[i])
            return;
        lw->dir_fp[i] = fp;
    }
    ev_timer_stop(loop, &lw->debounce);
    ev_timer_set(&lw->debounce, LWATCH_DEBOUNCE, 0.);
    ev_timer_start(loop, &lw->debounce);
}

static void add(struct lwatch *lw, const char *path, int is_dir)
{
    if (path == NULL || lw->n >= LWATCH_MAX)
        return;
    for (int i = 0; i < lw->n; i++)
        if (strcmp(lw->paths[i], path) == 0)
            return;
    char *p = rc_xstrdup(path);
    lw->paths[lw->n] = p;
    lw->dir_fp[lw->n] = is_dir ? lua_fingerprint(p) : 0;
    ev_stat *st = &lw->st[lw->n];
    ev_stat_init(st, on_change, p, 0.);
    st->data = lw;
    ev_stat_start(lw->loop, st);
    lw->n++;
}

static void add_file_and_dir(struct lwatch *lw, const char *path)
{
    if (path == NULL)
        return;
    add(lw, path, 0);
    char *copy = rc_xstrdup(path);
    add(lw, dirname(copy), 1);
    rc_free(copy);
}

struct lwatch *lwatch_start(struct ev_loop *loop, const struct rc_config *cfg, void (*cb)(void *ud),
                            void *ud)
{
    if (cfg->script == NULL)
        return NULL;
    struct lwatch *lw = rc_xcalloc(1, sizeof(*lw));
    lw->loop = loop;
    lw->cb = cb;
    lw->ud = ud;
    ev_init(&lw->debounce, on_debounce);
    lw->debounce.data = lw;
    add_file_and_dir(lw, cfg->script);
    for (int i = 0; i < cfg->nplugins; i++)
        add_file_and_dir(lw, cfg->plugins[i].path);
    for (int i = 0; i < cfg->nroutes; i++)
        add_file_and_dir(lw, cfg->routes[i].script);
    return lw;
}

void lwatch_stop(struct lwatch *lw)
{
    if (lw == NULL)
        return;
    ev_timer_stop(lw->loop, &lw->debounce);
    for (int i = 0; i < lw->n; i++) {
        ev_stat_stop(lw->loop, &lw->st[i]);
        rc_free(lw->paths[i]);
    }
    rc_free(lw);
}
