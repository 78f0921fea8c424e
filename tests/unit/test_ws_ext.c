/* test_ws_ext.c - Sec-WebSocket-Extensions offers and the permessage-deflate
 * answer (RFC 7692 §5, §7.1).
 *
 * Every vector (one or more header field values) is fed whole, split in two
 * at every offset of every field, and one byte at a time; each piece is
 * copied to the end of a guard page, so a read past the bytes fed crashes.
 * All ways must give the same outcome, and the answer line is compared byte
 * for byte. The offers of RFC 7692's examples (§5.1, §7.1.1.*, §7.1.2.*,
 * §7.1.3) are all here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "guardbuf.h"
#include "ws_ext.h"

#define ANSWER_BASE                                                                                \
    "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "                   \
    "client_no_context_takeover"

struct vec {
    const char *fields[3]; /* header field values, NULL-terminated */
    unsigned policy_bits;  /* 0: 15 */
    const char *answer;    /* expected answer line without CRLF, or NULL: declined */
};

static const struct vec vecs[] = {
    /* RFC 7692 §5.1 and §7.1.3: the plain offer */
    {{"permessage-deflate"}, 0, ANSWER_BASE},
    /* §7.1.1.1, §7.1.1.2 */
    {{"permessage-deflate; server_no_context_takeover"}, 0, ANSWER_BASE},
    {{"permessage-deflate; client_no_context_takeover"}, 0, ANSWER_BASE},
    {{"permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
     0,
     ANSWER_BASE},
    /* §7.1.2.2: client_max_window_bits without a value: we do not restrict it */
    {{"permessage-deflate; client_max_window_bits"}, 0, ANSWER_BASE},
    {{"permessage-deflate; client_max_window_bits=10"},
     0,
     ANSWER_BASE "; client_max_window_bits=10"},
    {{"permessage-deflate; client_max_window_bits=8"}, 0, ANSWER_BASE "; client_max_window_bits=8"},
    /* §7.1.2.1 */
    {{"permessage-deflate; server_max_window_bits=10"},
     0,
     ANSWER_BASE "; server_max_window_bits=10"},
    {{"permessage-deflate; server_max_window_bits=15"},
     0,
     ANSWER_BASE "; server_max_window_bits=15"},
    {{"permessage-deflate; server_max_window_bits=9"}, 0, ANSWER_BASE "; server_max_window_bits=9"},
    /* §7.1.3: several offers, the first acceptable one wins */
    {{"permessage-deflate; client_max_window_bits; server_max_window_bits=10, "
      "permessage-deflate; client_max_window_bits"},
     0,
     ANSWER_BASE "; server_max_window_bits=10"},
    {{"permessage-deflate; server_max_window_bits=10, permessage-deflate"},
     0,
     ANSWER_BASE "; server_max_window_bits=10"},
    /* an 8-bit server window cannot be honoured (zlib): that offer is declined */
    {{"permessage-deflate; server_max_window_bits=8, permessage-deflate"}, 0, ANSWER_BASE},
    {{"permessage-deflate; server_max_window_bits=8"}, 0, NULL},
    /* a server configured for 8 runs (and says) 9 */
    {{"permessage-deflate"}, 8, ANSWER_BASE "; server_max_window_bits=9"},
    {{"permessage-deflate"}, 12, ANSWER_BASE "; server_max_window_bits=12"},
    {{"permessage-deflate; server_max_window_bits=10"},
     12,
     ANSWER_BASE "; server_max_window_bits=10"},
    {{"permessage-deflate; server_max_window_bits=14"},
     12,
     ANSWER_BASE "; server_max_window_bits=12"},
    /* quoted values (§7.1: a token after unescaping) */
    {{"permessage-deflate; client_max_window_bits=\"10\""},
     0,
     ANSWER_BASE "; client_max_window_bits=10"},
    {{"permessage-deflate; client_max_window_bits=\"1\\0\""},
     0,
     ANSWER_BASE "; client_max_window_bits=10"},
    {{"permessage-deflate; server_max_window_bits=\"11\"; client_max_window_bits"},
     0,
     ANSWER_BASE "; server_max_window_bits=11"},
    /* parameters in any order, OWS around separators */
    {{"permessage-deflate ;client_max_window_bits = 12 ; server_no_context_takeover  "},
     0,
     ANSWER_BASE "; client_max_window_bits=12"},
    {{"\tpermessage-deflate;server_max_window_bits=13;client_no_context_takeover"},
     0,
     ANSWER_BASE "; server_max_window_bits=13"},
    /* other extensions are skipped, whatever their parameters */
    {{"x-webkit-deflate-frame"}, 0, NULL},
    {{"foo; bar=\"a, b\"; baz, permessage-deflate"}, 0, ANSWER_BASE},
    {{"Permessage-Deflate"}, 0, NULL},
    {{"permessage-deflatex"}, 0, NULL},
    /* empty list elements are ignored (RFC 9110 §5.6.1) */
    {{", ,permessage-deflate,"}, 0, ANSWER_BASE},
    {{""}, 0, NULL},
    /* several header fields form one list */
    {{"foo", "permessage-deflate; server_max_window_bits=12"},
     0,
     ANSWER_BASE "; server_max_window_bits=12"},
    {{"permessage-deflate; bogus", "permessage-deflate; client_max_window_bits=9"},
     0,
     ANSWER_BASE "; client_max_window_bits=9"},
    {{"permessage-deflate; client_max_window_bits=\"1", "permessage-deflate"}, 0, ANSWER_BASE},
    {{"permessage-deflate;", "permessage-deflate; server_max_window_bits=11"},
     0,
     ANSWER_BASE "; server_max_window_bits=11"},
    /* a bad offer is declined, the next one still counts */
    {{"permessage-deflate; foo, permessage-deflate"}, 0, ANSWER_BASE},
    {{"permessage-deflate; server_max_window_bits=16, permessage-deflate; "
      "client_max_window_bits=9"},
     0,
     ANSWER_BASE "; client_max_window_bits=9"},
    {{"permessage-deflate; =x, permessage-deflate"}, 0, ANSWER_BASE},
    {{"permessage-deflate; a b, permessage-deflate"}, 0, ANSWER_BASE},
    /* unknown, repeated, missing or bad values: declined */
    {{"permessage-deflate; foo"}, 0, NULL},
    {{"permessage-deflate; server_no_context_takeover; server_no_context_takeover"}, 0, NULL},
    {{"permessage-deflate; client_max_window_bits; client_max_window_bits=10"}, 0, NULL},
    {{"permessage-deflate; server_max_window_bits"}, 0, NULL},
    {{"permessage-deflate; server_max_window_bits="}, 0, NULL},
    {{"permessage-deflate; server_max_window_bits=08"}, 0, NULL},
    {{"permessage-deflate; server_max_window_bits=7"}, 0, NULL},
    {{"permessage-deflate; server_max_window_bits=1000000000000000000010"}, 0, NULL},
    {{"permessage-deflate; client_max_window_bits=7"}, 0, NULL},
    {{"permessage-deflate; client_max_window_bits=16"}, 0, NULL},
    {{"permessage-deflate; client_max_window_bits=\"\""}, 0, NULL},
    {{"permessage-deflate; client_max_window_bits=\"1 0\""}, 0, NULL},
    {{"permessage-deflate; server_no_context_takeover=1"}, 0, NULL},
    {{"permessage-deflate; client_no_context_takeover=\"\""}, 0, NULL},
    {{"permessage-deflate; server_max_window_bits_and_a_much_longer_name=10"}, 0, NULL},
    {{"permessage-deflate;"}, 0, NULL},
    {{"permessage-deflate; client_max_window_bits=\"10"}, 0, NULL},
    {{"permessage-deflate; client_max_window_bits=10\""}, 0, NULL},
    {{"permessage-deflate; ;"}, 0, NULL},
    {{"permessage-deflate client_max_window_bits"}, 0, NULL},
    /* nothing inside a quoted string is ever taken for an offer */
    {{"foo; a=\"x, permessage-deflate\""}, 0, NULL},
    {{"permessage-deflate; a=\"x, permessage-deflate\""}, 0, NULL},
    {{"permessage-deflate; @\"x, permessage-deflate\""}, 0, NULL},
    {{"foo; @\"x, permessage-deflate; y=\\\", z\""}, 0, NULL},
    {{"foo; a=\"\x01, permessage-deflate\""}, 0, NULL},
};

/* split: field index and offset at which to cut (-1: whole), bytewise: 1 byte at a time. */
static int run(const struct vec *v, int split_field, size_t split_at, int bytewise, char *ans,
               size_t cap)
{
    struct pmd_policy pol = {.window_bits = (uint8_t)(v->policy_bits ? v->policy_bits : 15)};
    struct ws_ext_parser p;
    ws_ext_init(&p, &pol);
    for (int f = 0; f < 3 && v->fields[f]; f++) {
        const char *s = v->fields[f];
        size_t n = strlen(s);
        if (bytewise) {
            for (size_t i = 0; i < n; i++)
                ws_ext_feed(&p, guardbuf_put(s + i, 1), 1);
        } else if (f == split_field) {
            ws_ext_feed(&p, guardbuf_put(s, split_at), split_at);
            ws_ext_feed(&p, guardbuf_put(s + split_at, n - split_at), n - split_at);
        } else {
            ws_ext_feed(&p, guardbuf_put(s, n), n);
        }
        ws_ext_end_field(&p);
    }
    struct pmd_params prm;
    if (!ws_ext_finish(&p, &prm))
        return 0;
    int n = ws_ext_answer(ans, cap, &prm);
    assert_true(n > 0);
    return 1;
}

static void check(const struct vec *v, int ok, const char *ans, const char *how)
{
    if (v->answer == NULL) {
        if (ok)
            fail_msg("%s: [%s] should be declined, got '%s'", how, v->fields[0], ans);
        return;
    }
    if (!ok)
        fail_msg("%s: [%s] declined, expected '%s'", how, v->fields[0], v->answer);
    char want[256];
    snprintf(want, sizeof(want), "%s\r\n", v->answer);
    if (strcmp(ans, want) != 0)
        fail_msg("%s: [%s] answered '%s', expected '%s'", how, v->fields[0], ans, want);
}

static void test_vectors_whole(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++) {
        char ans[256] = "";
        check(&vecs[i], run(&vecs[i], -1, 0, 0, ans, sizeof(ans)), ans, "whole");
    }
}

static void test_vectors_every_split(void **state)
{
    (void)state;
    size_t runs = 0;
    for (size_t i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++) {
        for (int f = 0; f < 3 && vecs[i].fields[f]; f++) {
            size_t n = strlen(vecs[i].fields[f]);
            for (size_t at = 0; at <= n; at++) {
                char ans[256] = "";
                char how[64];
                snprintf(how, sizeof(how), "split field %d at %zu", f, at);
                check(&vecs[i], run(&vecs[i], f, at, 0, ans, sizeof(ans)), ans, how);
                runs++;
            }
        }
    }
    assert_true(runs > 1000);
}

static void test_vectors_bytewise(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++) {
        char ans[256] = "";
        check(&vecs[i], run(&vecs[i], -1, 0, 1, ans, sizeof(ans)), ans, "bytewise");
    }
}

/* No header at all, and a parser finished twice. */
static void test_no_offer(void **state)
{
    (void)state;
    struct pmd_policy pol = {.window_bits = 15};
    struct ws_ext_parser p;
    ws_ext_init(&p, &pol);
    struct pmd_params prm;
    assert_int_equal(ws_ext_finish(&p, &prm), 0);
    ws_ext_feed(&p, NULL, 0);
    assert_int_equal(ws_ext_finish(&p, &prm), 0);
}

/* The accepted numbers themselves, not only the answer text. */
static void test_params(void **state)
{
    (void)state;
    struct pmd_policy pol = {.window_bits = 15};
    struct ws_ext_parser p;
    ws_ext_init(&p, &pol);
    const char *s = "permessage-deflate; server_max_window_bits=10; client_max_window_bits=11";
    ws_ext_feed(&p, s, strlen(s));
    struct pmd_params prm;
    assert_int_equal(ws_ext_finish(&p, &prm), 1);
    assert_int_equal(prm.server_window_bits, 10);
    assert_int_equal(prm.client_window_bits, 11);
    assert_int_equal(prm.client_no_context, 1);
}

static void test_answer_too_small(void **state)
{
    (void)state;
    struct pmd_params prm = {.server_window_bits = 15, .client_no_context = 1};
    char out[16];
    assert_int_equal(ws_ext_answer(out, sizeof(out), &prm), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_whole),    cmocka_unit_test(test_vectors_every_split),
        cmocka_unit_test(test_vectors_bytewise), cmocka_unit_test(test_no_offer),
        cmocka_unit_test(test_params),           cmocka_unit_test(test_answer_too_small),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    guardbuf_free();
    return rc;
}
