#define _GNU_SOURCE
#include "guardbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static unsigned char *region;
static size_t region_len;

void guardbuf_free(void)
{
    if (region)
        munmap(region, region_len);
    region = NULL;
    region_len = 0;
}

void *guardbuf_put(const void *data, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = (len + page - 1) / page;
    if (data_pages == 0)
        data_pages = 1;
    guardbuf_free();
    region_len = (data_pages + 1) * page;
    region = mmap(NULL, region_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) {
        perror("mmap");
        abort();
    }
    unsigned char *guard = region + data_pages * page;
    if (mprotect(guard, page, PROT_NONE) != 0) {
        perror("mprotect");
        abort();
    }
    unsigned char *start = guard - len;
    if (len)
        memcpy(start, data, len);
    return start;
}
