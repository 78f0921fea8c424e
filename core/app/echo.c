#include "echo.h"

#include "closecode.h"
#include "err.h"

static void echo_message(struct conn *c, unsigned opcode, const uint8_t *data, size_t len)
{
    int rc = conn_send(c, opcode, data, len);
    if (rc == RC_E_NOMEM)
        conn_fail(c, WS_CLOSE_INTERNAL, "out of memory");
}

const struct conn_handler echo_handler = {
    .on_message = echo_message,
};
