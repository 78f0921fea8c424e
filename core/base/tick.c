#include "tick.h"

#include <time.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "log.h"

#define Q32 ((uint64_t)1 << 32)

atomic_int rc_tick__tsc = RC_TICK_MONOTONIC;
atomic_uint_fast64_t rc_tick__mult = Q32;

uint64_t rc_tick__mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

enum rc_tick_source rc_tick_source(void)
{
    return (enum rc_tick_source)atomic_load_explicit(&rc_tick__tsc, memory_order_relaxed);
}

uint64_t rc_tick_mult(void)
{
    return atomic_load_explicit(&rc_tick__mult, memory_order_relaxed);
}

#if defined(__x86_64__)

/* Calibration: CAL_ROUNDS rounds, each a (TSC, CLOCK_MONOTONIC) pair, a
 * CAL_ROUND_NS sleep, and a second pair; the median round's factor wins.
 * A pair is the tightest of CAL_TRIES brackets "clock, TSC, clock", so a
 * preemption or an interrupt inside one bracket only widens that one. */
#define CAL_ROUNDS 3
#define CAL_ROUND_NS 1000000
#define CAL_TRIES 8
/* A pair whose best bracket is wider than this is not trusted: a 10 us
 * bracket on each end of a 1 ms round already means 1 % of error. */
#define CAL_MAX_BRACKET_NS 5000
/* The rounds must agree within 1/CAL_SPREAD (0.5 %). */
#define CAL_SPREAD 200
/* Plausible TSC rates: 200 MHz .. 20 GHz, as ns per tick in Q32. */
#define CAL_MULT_MAX (5 * Q32)
#define CAL_MULT_MIN (Q32 / 20)

/* The calibration base (rc_tick_init's first pair): touched by
 * rc_tick_init() and rc_tick_refine() only, on one thread. */
static uint64_t base_tsc, base_ns;

static int cpu_has_invariant_tsc(void)
{
    unsigned a, b, c, d;
    /* __get_cpuid checks the highest extended leaf first. */
    if (!__get_cpuid(0x80000007u, &a, &b, &c, &d))
        return 0;
    return (d >> 8) & 1;
}

/* One (tsc, ns) pair: the narrowest of CAL_TRIES brackets, ns its middle.
 * Returns the bracket's width in ns. */
static uint64_t sample_pair(uint64_t *tsc, uint64_t *ns)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < CAL_TRIES; i++) {
        uint64_t a = rc_tick__mono_ns();
        uint64_t t = __rdtsc();
        uint64_t b = rc_tick__mono_ns();
        if (b - a < best) {
            best = b - a;
            *tsc = t;
            *ns = a + (b - a) / 2;
        }
    }
    return best;
}

/* ns per tick in Q32 between two pairs; 0 when the TSC did not advance. */
static uint64_t factor(uint64_t t0, uint64_t n0, uint64_t t1, uint64_t n1)
{
    if (t1 <= t0 || n1 <= n0)
        return 0;
    unsigned __int128 q = ((unsigned __int128)(n1 - n0) << 32) / (t1 - t0);
    return q > UINT64_MAX ? 0 : (uint64_t)q;
}

static int plausible(uint64_t mult)
{
    return mult >= CAL_MULT_MIN && mult <= CAL_MULT_MAX;
}

/* The calibrated factor, or 0 with *why set when it cannot be trusted. */
static uint64_t calibrate(const char **why)
{
    uint64_t m[CAL_ROUNDS];
    for (int r = 0; r < CAL_ROUNDS; r++) {
        uint64_t t0, n0, t1, n1;
        uint64_t w0 = sample_pair(&t0, &n0);
        struct timespec sl = {0, CAL_ROUND_NS};
        nanosleep(&sl, NULL);
        uint64_t w1 = sample_pair(&t1, &n1);
        if (w0 > CAL_MAX_BRACKET_NS || w1 > CAL_MAX_BRACKET_NS) {
            *why = "clock reads too slow to bracket the TSC";
            return 0;
        }
        if (r == 0) {
            base_tsc = t0;
            base_ns = n0;
        }
        m[r] = factor(t0, n0, t1, n1);
        if (!plausible(m[r])) {
            *why = "implausible TSC rate";
            return 0;
        }
    }
    /* Sort the three (CAL_ROUNDS is small): insertion sort. */
    for (int i = 1; i < CAL_ROUNDS; i++)
        for (int j = i; j > 0 && m[j - 1] > m[j]; j--) {
            uint64_t x = m[j];
            m[j] = m[j - 1];
            m[j - 1] = x;
        }
    uint64_t med = m[CAL_ROUNDS / 2];
    if (m[CAL_ROUNDS - 1] - m[0] > med / CAL_SPREAD) {
        *why = "calibration rounds disagree";
        return 0;
    }
    return med;
}

/* The TSC count after which rc_tick_refine() measures again. */
static uint64_t refine_tsc;

static void schedule_refine(uint64_t tsc, uint64_t mult)
{
    refine_tsc = tsc + (uint64_t)(((unsigned __int128)RC_TICK_REFINE_S * 1000000000u << 32) / mult);
}

enum rc_tick_source rc_tick_init(int allow_tsc)
{
    const char *why = "forced: clock = \"monotonic\"";
    uint64_t mult = 0;
    if (allow_tsc) {
        if (!cpu_has_invariant_tsc())
            why = "no invariant TSC";
        else
            mult = calibrate(&why);
    }
    if (mult) {
        schedule_refine(base_tsc, mult);
        atomic_store_explicit(&rc_tick__mult, mult, memory_order_relaxed);
        atomic_store_explicit(&rc_tick__tsc, RC_TICK_TSC, memory_order_relaxed);
        rc_info("tick clock: invariant TSC, %.3f MHz", 1e3 * (double)Q32 / (double)mult);
        return RC_TICK_TSC;
    }
    atomic_store_explicit(&rc_tick__tsc, RC_TICK_MONOTONIC, memory_order_relaxed);
    atomic_store_explicit(&rc_tick__mult, Q32, memory_order_relaxed);
    rc_info("tick clock: CLOCK_MONOTONIC (%s)", why);
    return RC_TICK_MONOTONIC;
}

void rc_tick_refine(void)
{
    if (atomic_load_explicit(&rc_tick__tsc, memory_order_relaxed) != RC_TICK_TSC)
        return;
    /* The early return reads the TSC, not the clock: this runs on a 50 ms
     * timer, and most calls have nothing to do. */
    if ((int64_t)(__rdtsc() - refine_tsc) < 0)
        return;
    uint64_t cur = atomic_load_explicit(&rc_tick__mult, memory_order_relaxed);
    uint64_t t, n;
    uint64_t w = sample_pair(&t, &n);
    schedule_refine(t, cur);
    if (w > CAL_MAX_BRACKET_NS)
        return;
    uint64_t mult = factor(base_tsc, base_ns, t, n);
    uint64_t diff = mult > cur ? mult - cur : cur - mult;
    if (!plausible(mult) || diff > cur / 100) {
        /* A suspended machine or VM in between: keep the factor, and
         * measure from here on. */
        base_tsc = t;
        base_ns = n;
        return;
    }
    atomic_store_explicit(&rc_tick__mult, mult, memory_order_relaxed);
}

#else

enum rc_tick_source rc_tick_init(int allow_tsc)
{
    rc_info("tick clock: CLOCK_MONOTONIC (%s)",
            allow_tsc ? "no TSC on this architecture" : "forced: clock = \"monotonic\"");
    return RC_TICK_MONOTONIC;
}

void rc_tick_refine(void)
{
}

#endif
