#include "urlpath.h"

#include <string.h>

#include "defs.h"
#include "err.h"

static const char index_name[] = "index.html";

ssize_t urlpath_normalize(const char *path, size_t len, char *out, size_t cap)
{
    if (len == 0 || path[0] != '/' || cap == 0)
        return RC_E_INVAL;
    size_t o = 0;   /* bytes written to out */
    size_t seg = 0; /* start of the current segment in out */
    for (size_t i = 1; i <= len; i++) {
        if (i == len || path[i] == '/') {
            /* end of a segment: out[seg..o) */
            size_t sl = o - seg;
            if (sl == 0) {
                continue; /* "//": empty segments collapse */
            }
            /* "." and ".." (whatever their spelling) and dot files are
             * refused rather than resolved: nothing legitimate needs them. */
            if (out[seg] == '.')
                return RC_E_INVAL;
            if (i < len) {
                if (o + 1 >= cap)
                    return RC_E_TOO_BIG;
                out[o++] = '/';
                seg = o;
            }
            continue;
        }
        unsigned char ch = (unsigned char)path[i];
        if (ch == '%') {
            if (i + 2 >= len)
                return RC_E_INVAL;
            int hi = rc_hexval(path[i + 1]), lo = rc_hexval(path[i + 2]);
            if (hi < 0 || lo < 0)
                return RC_E_INVAL;
            ch = (unsigned char)(hi << 4 | lo);
            i += 2;
            if (ch == '/')
                return RC_E_INVAL;
        }
        if (ch < 0x20 || ch == 0x7f || ch == '\\')
            return RC_E_INVAL;
        if (o + 1 >= cap)
            return RC_E_TOO_BIG;
        out[o++] = (char)ch;
    }
    /* A trailing '/' (or the bare "/") names a directory: its index page. */
    if (o == 0 || path[len - 1] == '/') {
        if (o > 0 && out[o - 1] != '/') {
            if (o + 1 >= cap)
                return RC_E_TOO_BIG;
            out[o++] = '/';
        }
        if (o + sizeof(index_name) > cap)
            return RC_E_TOO_BIG;
        memcpy(out + o, index_name, sizeof(index_name));
        return (ssize_t)(o + sizeof(index_name) - 1);
    }
    if (out[o - 1] == '/')
        o--;
    out[o] = '\0';
    return (ssize_t)o;
}
