#include "err.h"

#include <errno.h>
#include <string.h>

const char *rc_err_name(int err)
{
    switch (err) {
#define RC_ERR_NAME(name, val, msg)                                                                \
    case val:                                                                                      \
        return "RC_" #name;
        RC_ERR_MAP(RC_ERR_NAME)
#undef RC_ERR_NAME
    case 0:
        return "OK";
    case -EAGAIN:
        return "EAGAIN";
    case -EINTR:
        return "EINTR";
    case -ECONNRESET:
        return "ECONNRESET";
    case -EPIPE:
        return "EPIPE";
    default:
        return "ERRNO";
    }
}

const char *rc_strerror(int err)
{
    switch (err) {
#define RC_ERR_MSG(name, val, msg)                                                                 \
    case val:                                                                                      \
        return msg;
        RC_ERR_MAP(RC_ERR_MSG)
#undef RC_ERR_MSG
    case 0:
        return "success";
    default:
        if (err < 0 && err > -4096)
            return strerror(-err);
        return "unknown error";
    }
}
