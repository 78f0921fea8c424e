#include "lcall.h"

#include <lauxlib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "err.h"
#include "log.h"
#include "stats.h"

/* The count hook fires every LCALL_PERIOD instructions and stays installed
 * for the life of the state: setting a hook per call costs two dispatch-table
 * rewrites (~130 ns a call), counting fires costs nothing measurable. The
 * budget is therefore enforced to within LCALL_PERIOD instructions. */
#define LCALL_PERIOD 10000
/* Hook periods allowed after the first budget error, so the chain runner can
 * still answer the client with handler_error before the script is cut off. */
#define LCALL_GRACE_PERIODS 2

/* Registry key (its address). */
static char key_stats;
/* The registry slot of the state's cached coroutine (false while none is
 * cached): lcall_init takes the state's first luaL_ref, which is 1. An array
 * slot costs no hashing; a lightuserdata key costs ~100 Ir per lookup in
 * LuaJIT's GC64 mode, and every call took and gave back the coroutine. Never
 * nil: a nil slot 1 could make luaL_ref hand it out again. */
#define REF_THREAD 1

/* One lcall_pcall in progress on this thread (they nest when a handler's C
 * call ends in another handler call, e.g. a close notification). */
struct run {
    struct run *outer;
    uint64_t budget;
    uint64_t spent; /* instructions, in LCALL_PERIOD steps */
    int exhausted;  /* 0, 1 = first error raised, 2 = erroring at every instruction */
    int grace;
    int can_park;    /* started by lcall_pcall_async (or resumed): may wait */
    uint64_t ticket; /* issued by lcall_wait_ticket during this run (0: none) */
    int64_t deadline_ms;
    struct lcall_end *ends; /* the call's end actions (lcall_at_end), newest first */
};

/* How a parked handler reports its end (lcall_pcall_async). */
struct park_req {
    lcall_done_fn done;
    void *ud;
    uint64_t tag;
};

/* A handler coroutine waiting for ticket `ticket`. Owned by the thread's
 * parked list; freed when completed, expired or dropped.
 *
 *   parked_head -> [ticket 7, L, co_ref] -> [ticket 5, ...] -> NULL
 *
 * The coroutine is anchored in L's registry (co_ref) so the GC keeps it. */
struct parked {
    struct parked *next;
    uint64_t ticket;
    lua_State *L; /* borrowed: the main state */
    int co_ref;
    uint64_t budget_left; /* what the run may still spend (0: unlimited) */
    int64_t deadline_ms;  /* monotonic */
    const char *what;     /* static */
    struct park_req pk;
    struct lcall_end *ends; /* the call's end actions, run when it ends */
    pthread_t thread;       /* the thread that parked it (its worker's) */
};

static _Thread_local struct run *cur_run;
static _Thread_local int depth;
static _Thread_local uint64_t errors_seen;
/* One list for the process (a mutex, held for list operations only, never
 * while Lua runs): a worker's waits outlive its thread at shutdown, when the
 * main thread stops the worker's Lua (lcall_drop_state). Each record names
 * its thread; lcall_expire and lcall_parked(NULL) look at the caller's own. */
static pthread_mutex_t parked_mu = PTHREAD_MUTEX_INITIALIZER;
static struct parked *parked_head;
static _Atomic uint64_t ticket_seq;

static void budget_hook(lua_State *co, lua_Debug *ar);

void lcall_init(lua_State *L, struct worker_stats *stats)
{
    lua_pushboolean(L, 0);
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (ref != REF_THREAD)
        rc_panic("lcall_init: the state had registry refs already (got %d)", ref);
    lua_pushlightuserdata(L, &key_stats);
    lua_pushlightuserdata(L, stats);
    lua_rawset(L, LUA_REGISTRYINDEX);
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, LCALL_PERIOD);
}

int lcall_depth(void)
{
    return depth;
}

uint64_t lcall_errors(void)
{
    return errors_seen;
}

/* LUA_MASKCOUNT hook (Redis luaMaskCountHook): the first time the budget is
 * spent, raise an ordinary error; after a short grace, raise at every
 * instruction so that a script that catches the error with pcall cannot keep
 * running: each frame it returns to fails again until the coroutine is gone. */
static void budget_hook(lua_State *co, lua_Debug *ar)
{
    (void)ar;
    struct run *r = cur_run;
    if (r == NULL || r->budget == 0)
        return;
    if (r->exhausted == 0) {
        r->spent += LCALL_PERIOD;
        if (r->spent < r->budget)
            return;
        r->exhausted = 1;
    } else if (r->exhausted == 1 && ++r->grace < LCALL_GRACE_PERIODS) {
        return;
    }
    /* Level 0 is the function the hook interrupted: the script's file:line. */
    luaL_where(co, 0);
    if (r->grace == 0) {
        lua_pushfstring(co, "instruction budget of %f exhausted (endless loop?)",
                        (lua_Number)r->budget);
    } else {
        r->exhausted = 2;
        lua_sethook(co, budget_hook, LUA_MASKCOUNT, 1);
        lua_pushliteral(co, "instruction budget exhausted");
    }
    lua_concat(co, 2);
    lua_error(co);
}

/* Takes the state's cached coroutine, or makes one; leaves it on L's stack. */
static lua_State *take_thread(lua_State *L)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, REF_THREAD);
    lua_State *co = lua_tothread(L, -1);
    if (co != NULL) {
        /* In use by an outer call from now on: the nested call makes its own. */
        lua_pushboolean(L, 0);
        lua_rawseti(L, LUA_REGISTRYINDEX, REF_THREAD);
        return co;
    }
    lua_pop(L, 1);
    return lua_newthread(L);
}

/* Gives a coroutine that finished cleanly back to the cache (it is on top of L). */
static void return_thread(lua_State *L)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, REF_THREAD);
    int empty = !lua_isthread(L, -1);
    lua_pop(L, 1);
    if (empty)
        lua_rawseti(L, LUA_REGISTRYINDEX, REF_THREAD); /* pops it */
    else
        lua_pop(L, 1);
}

static struct worker_stats *stats_of(lua_State *L)
{
    lua_pushlightuserdata(L, &key_stats);
    lua_rawget(L, LUA_REGISTRYINDEX);
    struct worker_stats *st = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return st;
}

/* The error message of a failed coroutine as a string (pushed on L). */
static const char *error_text(lua_State *L, lua_State *co, int status)
{
    if (status == LUA_YIELD) {
        lua_pushliteral(L, "handler yielded outside an asynchronous call (or where it cannot "
                           "wait: connect, save_state, loading)");
    } else if (lua_type(co, -1) == LUA_TSTRING || lua_type(co, -1) == LUA_TNUMBER) {
        lua_pushstring(L, lua_tostring(co, -1));
    } else if (status == LUA_ERRMEM) {
        lua_pushliteral(L, "out of memory");
    } else {
        lua_pushfstring(L, "(error object is a %s value)", luaL_typename(co, -1));
    }
    return lua_tostring(L, -1);
}

int64_t lcall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t lcall_wait_ticket(uint32_t timeout_ms)
{
    struct run *r = cur_run;
    if (r == NULL || !r->can_park || r->ticket != 0)
        return 0;
    /* Ids stay below 2^53: Lua numbers hold them exactly. */
    uint64_t t;
    do
        t = (atomic_fetch_add(&ticket_seq, 1) + 1) & ((1ULL << 53) - 1);
    while (t == 0);
    r->ticket = t;
    r->deadline_ms = lcall_now_ms() + (int64_t)timeout_ms;
    return r->ticket;
}

int lcall_at_end(struct lcall_end *e)
{
    if (cur_run == NULL)
        return RC_E_INVAL;
    e->next = cur_run->ends;
    cur_run->ends = e;
    return 0;
}

/* Runs a call's end actions (lcall.h): within a raised depth, so that what
 * they close defers its disconnect handler. */
static int run_ends(struct lcall_end *e, int rc)
{
    if (e == NULL) /* nearly every call: nothing registered */
        return 0;
    int n = 0;
    depth++;
    while (e != NULL) {
        struct lcall_end *next = e->next;
        e->fn(e, rc); /* frees e */
        e = next;
        n++;
    }
    depth--;
    return n;
}

int lcall_end_now(int rc)
{
    if (cur_run == NULL)
        return 0;
    struct lcall_end *e = cur_run->ends;
    cur_run->ends = NULL;
    return run_ends(e, rc);
}

void lcall_wait_cancel(uint64_t ticket)
{
    if (cur_run != NULL && cur_run->ticket == ticket)
        cur_run->ticket = 0;
}

/* Resumes co (on top of L's stack, nargs values pushed on co) within budget.
 * pk NULL: the call may not wait. Returns 0 (nres results pushed on L, co
 * popped), RC_PENDING (co parked and popped) or an error (co popped). */
static int resume(lua_State *L, lua_State *co, int nargs, int nres, uint64_t budget,
                  const char *what, char *err, size_t cap, const struct park_req *pk,
                  struct lcall_end *ends)
{
    struct run r = {
        .outer = cur_run, .budget = budget, .exhausted = 0, .can_park = pk != NULL, .ends = ends};
    cur_run = &r;
    depth++;
    int status = lua_resume(co, nargs);
    depth--;
    cur_run = r.outer;
    if (r.exhausted == 2)
        lua_sethook(L, budget_hook, LUA_MASKCOUNT, LCALL_PERIOD);

    if (status == LUA_YIELD && r.ticket != 0 && lua_gettop(co) == 1 &&
        lua_type(co, 1) == LUA_TNUMBER && (uint64_t)lua_tonumber(co, 1) == r.ticket) {
        /* An asynchronous call: park until lcall_complete(ticket). The
         * budget left is what this segment did not spend: waiting is free. */
        lua_settop(co, 0);
        struct parked *p = rc_xcalloc(1, sizeof(*p));
        p->ticket = r.ticket;
        p->L = L;
        p->co_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* L: ... co -> ... */
        p->budget_left = budget == 0 ? 0 : budget > r.spent ? budget - r.spent : 1;
        p->deadline_ms = r.deadline_ms;
        p->what = what;
        p->pk = *pk;
        p->ends = r.ends;
        p->thread = pthread_self();
        struct worker_stats *st = stats_of(L);
        if (st != NULL)
            STAT_INC(st, lua_waiting);
        pthread_mutex_lock(&parked_mu);
        p->next = parked_head;
        parked_head = p;
        pthread_mutex_unlock(&parked_mu);
        return RC_PENDING;
    }

    if (status == 0) {
        int got = lua_gettop(co);
        if (got > nres)
            lua_settop(co, nres);
        else
            for (; got < nres; got++)
                lua_pushnil(co);
        lua_xmove(co, L, nres);
        /* L: ... co res... */
        lua_pushvalue(L, -(nres + 1));
        return_thread(L);
        lua_remove(L, -(nres + 1));
        run_ends(r.ends, 0);
        return 0;
    }

    int rc = r.exhausted ? RC_E_TIMEOUT : RC_E_SCRIPT;
    const char *msg = error_text(L, co, status);
    if (err != NULL) {
        size_t n = strcspn(msg, "\n");
        if (cap > 0) {
            if (n >= cap)
                n = cap - 1;
            memcpy(err, msg, n);
            err[n] = '\0';
        }
    } else {
        static _Thread_local struct rc_ratelimit rl;
        errors_seen++;
        struct worker_stats *st = stats_of(L);
        if (st != NULL)
            STAT_INC(st, lua_errors_total);
        rc_log_limited(&rl, 10, RC_LOG_WARN, "lua: %s%s%s", what ? what : "", what ? ": " : "",
                       msg);
        if (rc_log_get_level() <= RC_LOG_DEBUG && status != LUA_YIELD) {
            luaL_traceback(L, co, msg, 0);
            rc_debug("lua: %s", lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 2); /* the message and the dead coroutine */
    run_ends(r.ends, rc);
    return rc;
}

static int run(lua_State *L, int nargs, int nres, uint64_t budget, const char *what, char *err,
               size_t cap, const struct park_req *pk)
{
    lua_State *co = take_thread(L);
    /* L: ... fn args... co  ->  ... co fn args... (moved to co) */
    lua_insert(L, -(nargs + 2));
    lua_xmove(L, co, nargs + 1);
    return resume(L, co, nargs, nres, budget, what, err, cap, pk, NULL);
}

int lcall_pcall_async(lua_State *L, int nargs, uint64_t budget, const char *what,
                      lcall_done_fn done, void *ud, uint64_t tag)
{
    struct park_req pk = {.done = done, .ud = ud, .tag = tag};
    return run(L, nargs, 0, budget, what, NULL, 0, &pk);
}

static int push_timeout(lua_State *co, void *ud);

int lcall_complete(uint64_t ticket, int (*push)(lua_State *co, void *ud), void *ud)
{
    if (depth > 0)
        return RC_E_INVAL; /* never inside a running handler (STYLE rule 5) */
    pthread_mutex_lock(&parked_mu);
    struct parked **pp = &parked_head;
    while (*pp != NULL && (*pp)->ticket != ticket)
        pp = &(*pp)->next;
    struct parked *p = *pp;
    if (p != NULL)
        *pp = p->next;
    pthread_mutex_unlock(&parked_mu);
    if (p == NULL)
        return RC_E_NOT_FOUND;
    lua_State *L = p->L;
    struct worker_stats *st = stats_of(L);
    if (st != NULL) {
        STAT_DEC(st, lua_waiting);
        if (push == push_timeout)
            STAT_INC(st, lua_wait_timeouts_total);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->co_ref); /* L: ... co */
    luaL_unref(L, LUA_REGISTRYINDEX, p->co_ref);
    lua_State *co = lua_tothread(L, -1);
    int n = push != NULL ? push(co, ud) : 0;
    /* A fresh budget record of what is left; an unlimited run stays so. */
    int rc = resume(L, co, n, 0, p->budget_left, p->what, NULL, 0, &p->pk, p->ends);
    if (rc != RC_PENDING && p->pk.done != NULL)
        p->pk.done(p->pk.ud, p->pk.tag, rc);
    rc_free(p);
    return 0;
}

static int push_timeout(lua_State *co, void *ud)
{
    (void)ud;
    lua_pushnil(co);
    lua_pushliteral(co, "timeout");
    return 2;
}

size_t lcall_expire(int64_t now_ms)
{
    if (depth > 0)
        return 0;
    /* Collect first: a resumed handler may park again (a new record). */
    size_t n = 0, cap = 0;
    uint64_t *due = NULL;
    pthread_t self = pthread_self();
    pthread_mutex_lock(&parked_mu);
    for (struct parked *p = parked_head; p != NULL; p = p->next) {
        if (p->deadline_ms > now_ms || !pthread_equal(p->thread, self))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            due = rc_xrealloc(due, cap * sizeof(*due));
        }
        due[n++] = p->ticket;
    }
    pthread_mutex_unlock(&parked_mu);
    size_t done = 0;
    for (size_t i = 0; i < n; i++)
        done += lcall_complete(due[i], push_timeout, NULL) == 0;
    rc_free(due);
    return done;
}

size_t lcall_parked(lua_State *L)
{
    size_t n = 0;
    pthread_t self = pthread_self();
    pthread_mutex_lock(&parked_mu);
    for (struct parked *p = parked_head; p != NULL; p = p->next)
        n += L == NULL ? pthread_equal(p->thread, self) != 0 : p->L == L;
    pthread_mutex_unlock(&parked_mu);
    return n;
}

size_t lcall_drop_state(lua_State *L)
{
    size_t n = 0;
    for (;;) {
        pthread_mutex_lock(&parked_mu);
        struct parked **pp = &parked_head;
        while (*pp != NULL && (*pp)->L != L)
            pp = &(*pp)->next;
        struct parked *p = *pp;
        if (p != NULL)
            *pp = p->next;
        pthread_mutex_unlock(&parked_mu);
        if (p == NULL)
            break;
        luaL_unref(L, LUA_REGISTRYINDEX, p->co_ref);
        struct worker_stats *st = stats_of(L);
        if (st != NULL)
            STAT_DEC(st, lua_waiting);
        run_ends(p->ends, RC_E_CLOSED);
        if (p->pk.done != NULL)
            p->pk.done(p->pk.ud, p->pk.tag, RC_E_CLOSED);
        rc_free(p);
        n++;
    }
    return n;
}

int lcall_pcall_what(lua_State *L, int nargs, int nres, uint64_t budget, const char *what)
{
    return run(L, nargs, nres, budget, what, NULL, 0, NULL);
}

int lcall_pcall(lua_State *L, int nargs, int nres, uint64_t budget)
{
    return run(L, nargs, nres, budget, NULL, NULL, 0, NULL);
}

int lcall_pcall_err(lua_State *L, int nargs, int nres, uint64_t budget, char *err, size_t cap)
{
    return run(L, nargs, nres, budget, NULL, err, cap, NULL);
}
