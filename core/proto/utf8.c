#include "utf8.h"

#include <string.h>

/* A DFA over RFC 3629 §4's grammar (our own tables).
 *
 * States (ACCEPT and REJECT are the values utf8.h promises):
 *   0 ACCEPT  1 REJECT  2 one continuation left  3 two left  4 three left
 *   5 after E0 (next A0..BF: no overlongs)   6 after ED (next 80..9F: no surrogates)
 *   7 after F0 (next 90..BF: no overlongs)   8 after F4 (next 80..8F: <= U+10FFFF)
 *
 * Byte classes and where each state goes on them (R = REJECT):
 *
 *   class  bytes           from: 0  1  2  3  4  5  6  7  8
 *   C0     00..7F                0  R  R  R  R  R  R  R  R
 *   C1     80..8F                R  R  0  2  3  R  2  R  3
 *   C2     90..9F                R  R  0  2  3  R  2  3  R
 *   C3     A0..BF                R  R  0  2  3  2  R  3  R
 *   C4     C0 C1 F5..FF          R  R  R  R  R  R  R  R  R
 *   C5     C2..DF                2  R  R  R  R  R  R  R  R
 *   C6     E0                    5  R ...
 *   C7     E1..EC EE EF          3  R ...
 *   C8     ED                    6  R ...
 *   C9     F0                    7  R ...
 *   C10    F1..F3                4  R ...
 *   C11    F4                    8  R ...
 *
 * Every transition that cannot lead to a valid sequence goes to REJECT at the
 * byte that makes it impossible, which is what fail-fast (Autobahn 6.4.x) needs:
 * "ED A0" fails at A0, "F4 90" at 90, "C0" at C0 itself.
 *
 * Encoding ("shift DFA"): internally a state s is kept as s * 6, and each byte
 * has one 64-bit row holding, in bits [6s, 6s + 6), the next state (times 6)
 * for every s. A step is then `row[byte] >> state & 63`: a shift and a mask on
 * the critical path instead of a dependent table load per byte.
 */
#define NSTATES 9
#define X(s) ((uint64_t)(s)*6)
#define ROW(a, b, c, d, e, f, g, h, i)                                                             \
    (X(a) | X(b) << 6 | X(c) << 12 | X(d) << 18 | X(e) << 24 | X(f) << 30 | X(g) << 36 |           \
     X(h) << 42 | X(i) << 48)
#define R UTF8_REJECT
#define C0 ROW(0, R, R, R, R, R, R, R, R)
#define C1 ROW(R, R, 0, 2, 3, R, 2, R, 3)
#define C2 ROW(R, R, 0, 2, 3, R, 2, 3, R)
#define C3 ROW(R, R, 0, 2, 3, 2, R, 3, R)
#define C4 ROW(R, R, R, R, R, R, R, R, R)
#define C5 ROW(2, R, R, R, R, R, R, R, R)
#define C6 ROW(5, R, R, R, R, R, R, R, R)
#define C7 ROW(3, R, R, R, R, R, R, R, R)
#define C8 ROW(6, R, R, R, R, R, R, R, R)
#define C9 ROW(7, R, R, R, R, R, R, R, R)
#define C10 ROW(4, R, R, R, R, R, R, R, R)
#define C11 ROW(8, R, R, R, R, R, R, R, R)

static const uint64_t row[256] = {
    C0, C0,  C0,  C0,  C0,  C0, C0, C0, C0, C0, C0, C0, C0, C0, C0, C0, /* 00..0F */
    C0, C0,  C0,  C0,  C0,  C0, C0, C0, C0, C0, C0, C0, C0, C0, C0, C0, /* 10..1F */
    C0, C0,  C0,  C0,  C0,  C0, C0, C0, C0, C0, C0, C0, C0, C0, C0, C0, /* 20..2F */
    C0, C0,  C0,  C0,  C0,  C0, C0, C0, C0, C0, C0, C0, C0, C0, C0, C0, /* 30..3F */
    C0, C0,  C0,  C0,  C0,  C0, C0, C0, C0, C0, C0, C0, C0, C0, C0, C0, /* 40..4F */
    C0, C0,  C0,  C0,  C0,  C0, C0, C0, C0, C0, C0, C0, C0, C0, C0, C0, /* 50..5F */
    C0, C0,  C0,  C0,  C0,  C0, C0, C0, C0, C0, C0, C0, C0, C0, C0, C0, /* 60..6F */
    C0, C0,  C0,  C0,  C0,  C0, C0, C0, C0, C0, C0, C0, C0, C0, C0, C0, /* 70..7F */
    C1, C1,  C1,  C1,  C1,  C1, C1, C1, C1, C1, C1, C1, C1, C1, C1, C1, /* 80..8F */
    C2, C2,  C2,  C2,  C2,  C2, C2, C2, C2, C2, C2, C2, C2, C2, C2, C2, /* 90..9F */
    C3, C3,  C3,  C3,  C3,  C3, C3, C3, C3, C3, C3, C3, C3, C3, C3, C3, /* A0..AF */
    C3, C3,  C3,  C3,  C3,  C3, C3, C3, C3, C3, C3, C3, C3, C3, C3, C3, /* B0..BF */
    C4, C4,  C5,  C5,  C5,  C5, C5, C5, C5, C5, C5, C5, C5, C5, C5, C5, /* C0..CF */
    C5, C5,  C5,  C5,  C5,  C5, C5, C5, C5, C5, C5, C5, C5, C5, C5, C5, /* D0..DF */
    C6, C7,  C7,  C7,  C7,  C7, C7, C7, C7, C7, C7, C7, C7, C8, C7, C7, /* E0..EF */
    C9, C10, C10, C10, C11, C4, C4, C4, C4, C4, C4, C4, C4, C4, C4, C4, /* F0..FF */
};

#define IN_ACCEPT X(UTF8_ACCEPT)
#define IN_REJECT X(UTF8_REJECT)
#define HIGH_BITS UINT64_C(0x8080808080808080)

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, 8); /* unaligned-safe; one load on x86/arm64 */
    return w;
}

static inline uint64_t step(uint64_t s, uint8_t b)
{
    return (row[b] >> s) & 63;
}

uint32_t utf8_validate(uint32_t state, const uint8_t *p, size_t n)
{
    if (state >= NSTATES)
        return UTF8_REJECT; /* not a state we handed out */
    uint64_t s = X(state);
    size_t i = 0;
    while (i < n) {
        if (s == IN_ACCEPT) {
            /* ASCII fast path: skip whole 16- and 8-byte blocks with no high bit. */
            while (n - i >= 16 && !((load64(p + i) | load64(p + i + 8)) & HIGH_BITS))
                i += 16;
            if (n - i >= 8 && !(load64(p + i) & HIGH_BITS))
                i += 8;
            if (i == n)
                break;
        }
        /* Up to 16 bytes through the DFA without a per-byte exit branch; REJECT
         * is sticky, so checking once per block still fails within this call. */
        size_t end = n - i > 16 ? i + 16 : n;
        for (; i < end; i++)
            s = step(s, p[i]);
        if (s == IN_REJECT)
            return UTF8_REJECT;
    }
    return (uint32_t)(s / 6);
}

int utf8_is_valid(const uint8_t *p, size_t n)
{
    return utf8_validate(UTF8_ACCEPT, p, n) == UTF8_ACCEPT;
}

size_t utf8_truncate(const uint8_t *p, size_t n)
{
    uint64_t s = IN_ACCEPT;
    size_t last = 0;
    for (size_t i = 0; i < n; i++) {
        s = step(s, p[i]);
        if (s == IN_REJECT)
            break;
        if (s == IN_ACCEPT)
            last = i + 1;
    }
    return last;
}
