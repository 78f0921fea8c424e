/* test_mailbox.c - the cross-thread path: several producer threads post
 * MAIL_PUBLISH to a room's owner while its worker runs; the room actor must
 * sequence every message exactly once (seq 1..N, no gaps, no duplicates),
 * keep each producer's order (per-sender FIFO), and leak nothing.
 * Built and run under TSan as well (label "tsan"). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "alloc.h"
#include "config.h"
#include "confload.h"
#include "echo.h"
#include "frame_ref.h"
#include "mailbox.h"
#include "room.h"
#include "worker.h"

#define PRODUCERS 3
#define PER_PRODUCER 2000

struct prod {
    struct server *s;
    int id;
};

static void *producer(void *arg)
{
    struct prod *p = arg;
    const char *room = "r";
    struct server *s = p->s;
    int owner = (int)(strmap_hash(room, 1) % (uint64_t)s->nworkers);
    for (int i = 0; i < PER_PRODUCER; i++) {
        char payload[64];
        int n = snprintf(payload, sizeof(payload), "{\"p\":%d,\"n\":%d}", p->id, i);
        struct mail *m = mail_new(MAIL_PUBLISH, room, 1, payload, (size_t)n);
        m->flags = ROOM_PUB_STAMP;
        mail_post(NULL, &s->workers[owner], m);
    }
    return NULL;
}

struct seen {
    uint64_t count;
    uint64_t last_seq;
    int last_n[PRODUCERS];
    int ok;
};

static void on_hist(void *ud, uint64_t seq, const char *payload, size_t plen)
{
    struct seen *sn = ud;
    int p = -1, n = -1;
    unsigned long long sq = 0;
    char buf[128];
    memcpy(buf, payload, plen < sizeof(buf) - 1 ? plen : sizeof(buf) - 1);
    buf[plen < sizeof(buf) - 1 ? plen : sizeof(buf) - 1] = '\0';
    if (sscanf(buf, "{\"p\":%d,\"n\":%d,\"seq\":%llu", &p, &n, &sq) != 3)
        sn->ok = 0;
    if (sq != seq || seq != sn->last_seq + 1)
        sn->ok = 0;
    if (p < 0 || p >= PRODUCERS || n != sn->last_n[p] + 1)
        sn->ok = 0;
    else
        sn->last_n[p] = n;
    sn->last_seq = seq;
    sn->count++;
}

static void test_mailbox__publishers_on_threads_are_sequenced_once_in_order(void **state)
{
    (void)state;
    long live0 = frame_ref_live();
    struct rc_config cfg;
    rc_config_defaults(&cfg);
    rc_config_set_str(&cfg.bind_addr, "127.0.0.1");
    cfg.port = 0;
    cfg.workers = 3;
    cfg.history_size = PRODUCERS * PER_PRODUCER;
    struct server s;
    assert_int_equal(server_init(&s, &cfg, &echo_handler), 0);
    assert_int_equal(server_start(&s), 0);

    pthread_t th[PRODUCERS];
    struct prod pr[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        pr[i].s = &s;
        pr[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, producer, &pr[i]), 0);
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(th[i], NULL);

    uint64_t want = PRODUCERS * PER_PRODUCER;
    for (int tries = 0; tries < 1000 && room_last_seq(&s, "r", 1) < want; tries++)
        usleep(10000);
    assert_int_equal(room_last_seq(&s, "r", 1), want);

    struct seen sn;
    memset(&sn, 0, sizeof(sn));
    sn.ok = 1;
    for (int i = 0; i < PRODUCERS; i++)
        sn.last_n[i] = -1;
    long n = room_history(&s, "r", 1, 0, 0, on_hist, &sn);
    assert_int_equal(n, (long)want);
    assert_int_equal(sn.count, want);
    assert_true(sn.ok);

    server_stop(&s, 1);
    server_join(&s);
    rc_config_free(&cfg);
    assert_int_equal(frame_ref_live(), live0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mailbox__publishers_on_threads_are_sequenced_once_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
