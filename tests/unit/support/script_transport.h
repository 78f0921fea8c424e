/* script_transport.h - a transport (net/transport.h) whose every read and
 * writev the test scripts: what arrives and in what pieces, how much each
 * writev takes, when the "socket" would block, EOF, errors. What conn
 * writes is collected in out, and shutdown/destroy are recorded. It is what
 * mockeagain gives OpenResty, through the vtable instead of LD_PRELOAD.
 */
#ifndef RC_TEST_SCRIPT_TRANSPORT_H
#define RC_TEST_SCRIPT_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "transport.h"

struct script {
    uint8_t *in; /* bytes the peer has sent, not yet read */
    size_t in_len, in_off, in_cap;
    size_t read_max; /* bytes per read at most (0: as many as asked) */
    int in_eof;      /* input exhausted: read returns 0 instead of -EAGAIN */
    int read_error;  /* nonzero: every read returns it (a negative errno) */
    uint8_t *out;    /* every byte conn wrote, in order */
    size_t out_len, out_cap;
    size_t write_max;        /* bytes per writev at most (0: all) */
    int write_eagain;        /* writev returns -EAGAIN */
    int write_limited;       /* a send buffer that fills: */
    size_t write_room;       /* bytes writev takes in all before it blocks */
    int write_error;         /* nonzero: writev returns it */
    int shutdowns;           /* shutdown calls */
    int destroyed;           /* destroy calls */
    unsigned reads, writevs; /* calls that moved bytes */
};

void script_init(struct script *s);
void script_free(struct script *s);
/* Makes t (a connection's transport) run on s; t->fd is left alone. */
void script_attach(struct transport *t, struct script *s);
/* The peer sends n more bytes. */
void script_input(struct script *s, const void *p, size_t n);

#endif
