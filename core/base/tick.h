/* tick.h - a cheap interval clock for timing short code paths.
 *
 * rc_tick_now() reads a raw tick count; rc_tick_ns(start, end) turns the
 * difference of two reads into nanoseconds. Only the difference is ever
 * converted, so a tick count has no meaning on its own.
 *
 * On x86-64 with an invariant TSC (CPUID 0x80000007 EDX bit 8: constant
 * rate in every P-, C- and T-state) a tick is one TSC cycle: RDTSC costs a
 * handful of instructions where clock_gettime() through the vDSO costs some
 * twenty-five, and the conversion is one multiply and shift by a Q32
 * nanoseconds-per-tick factor calibrated against CLOCK_MONOTONIC:
 *
 *     ns = (delta * mult) >> 32        (128-bit product: no overflow)
 *
 * rc_tick_init() calibrates once at start-up (a few ms) and
 * rc_tick_refine(), called from a periodic timer, re-measures the factor
 * over an ever longer baseline. Everywhere else (another architecture, no
 * invariant TSC, a calibration that looks wrong, or the operator forcing it
 * with the option clock = "monotonic") a tick is a CLOCK_MONOTONIC
 * nanosecond and mult is 1 << 32, exactly the clock the callers read before.
 *
 * Threads: rc_tick_init() before any thread that reads ticks starts (it
 * sets the source); rc_tick_refine() from one thread; rc_tick_now() and
 * rc_tick_ns() from any thread (the factor is a relaxed atomic: a reader
 * sees the old or the new one, both good).
 */
#ifndef RC_BASE_TICK_H
#define RC_BASE_TICK_H

#include <stdatomic.h>
#include <stdint.h>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

enum rc_tick_source { RC_TICK_MONOTONIC = 0, RC_TICK_TSC = 1 };

/* Chooses and calibrates the source: the TSC when allow_tsc is nonzero, the
 * CPU has an invariant one and the calibration is consistent; otherwise
 * (allow_tsc 0 forces it: main passes the clock option) CLOCK_MONOTONIC.
 * Logs the choice and the reason for a fallback once, at info level
 * ("tick clock: ..."). May be called again (tests), but only while no other
 * thread reads ticks. Takes about 3 ms when it calibrates. Returns the
 * source chosen, which rc_tick_source() reports from then on. */
enum rc_tick_source rc_tick_init(int allow_tsc);
/* Re-measures the TSC factor against CLOCK_MONOTONIC over the time since
 * rc_tick_init(), at most once every RC_TICK_REFINE_S seconds (a cheap
 * return otherwise) and only when the new factor is within 1 % of the old
 * one. Nothing to do on CLOCK_MONOTONIC. One thread only (main's timer). */
void rc_tick_refine(void);
#define RC_TICK_REFINE_S 5
/* The source in use. */
enum rc_tick_source rc_tick_source(void);
/* The current factor: nanoseconds per tick in Q32 (1 << 32 on
 * CLOCK_MONOTONIC). */
uint64_t rc_tick_mult(void);

/* Private to tick.c, here for the inline readers below. */
extern atomic_int rc_tick__tsc;            /* enum rc_tick_source */
extern atomic_uint_fast64_t rc_tick__mult; /* ns per tick, Q32 */
uint64_t rc_tick__mono_ns(void);

/* The current tick count. Any thread. */
static inline uint64_t rc_tick_now(void)
{
#if defined(__x86_64__)
    if (__builtin_expect(atomic_load_explicit(&rc_tick__tsc, memory_order_relaxed), 1))
        return __rdtsc();
#endif
    return rc_tick__mono_ns();
}

/* Nanoseconds from tick count `start` to `end` (both from rc_tick_now());
 * 0 when end is before start (a thread that moved between CPUs whose TSCs
 * disagree by a few cycles). Any thread. */
static inline uint64_t rc_tick_ns(uint64_t start, uint64_t end)
{
    uint64_t d = end - start;
    if ((int64_t)d < 0)
        d = 0;
#if defined(__SIZEOF_INT128__)
    uint64_t mult = atomic_load_explicit(&rc_tick__mult, memory_order_relaxed);
    return (uint64_t)(((unsigned __int128)d * mult) >> 32);
#else
    return d; /* CLOCK_MONOTONIC only: ticks are nanoseconds */
#endif
}

#endif
