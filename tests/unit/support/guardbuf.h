/* guardbuf.h - test buffers that end exactly at a PROT_NONE guard page, so a
 * parser reading one byte past its input crashes instead of passing
 * (picohttpparser's test harness idea, written for roomcast). */
#ifndef RC_TEST_GUARDBUF_H
#define RC_TEST_GUARDBUF_H

#include <stddef.h>

/* Copies data[0..len) so that its last byte is the last byte before a guard
 * page; returns the copy. Valid until the next guardbuf_put or guardbuf_free.
 * len may be 0 (returns a pointer to the guard page boundary). */
void *guardbuf_put(const void *data, size_t len);
void guardbuf_free(void);

#endif
