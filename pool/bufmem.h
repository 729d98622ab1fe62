/* bufmem: memory for buffers that exist only while a connection has
 * traffic: heap blocks below a page, private mappings of their own from a
 * page up.
 *
 * Such a buffer is taken among the heap blocks of connections that stay
 * (their sessions, wolfSSL's objects) and given back when the connection
 * goes idle; as a heap block it leaves a hole there, and malloc hands pages
 * back only where a free chunk covers them whole, so the hole's pages stay
 * resident beside their neighbours. After a burst of 10,000 TLS handshakes
 * the 4 KB output and session input buffers left about 6 KB a connection
 * so. A mapping goes back whole when freed, and its untouched pages are
 * never resident. Where the kernel refuses a mapping (vm.max_map_count),
 * the buffer is a heap block like any other. */
#ifndef VOLLEY_BUFMEM_H
#define VOLLEY_BUFMEM_H

#include <stddef.h>

#define BUFMEM_MAP_MIN 4096   /* from this size up, a mapping is tried */

/* Resizes buf (of *cap bytes, a mapping when *mapped) to want bytes,
 * keeping what fits of its bytes; a mapping's capacity is rounded up to
 * whole pages, so *cap may exceed want. want 0 frees it. Returns the
 * buffer (NULL for want 0), or NULL when memory is short, with buf, *cap
 * and *mapped unchanged. buf NULL with *cap 0 is an empty buffer. */
void *bufmem_resize(void *buf, size_t *cap, int *mapped, size_t want);

/* Frees a buffer of cap bytes (NULL is fine). */
void bufmem_free(void *buf, size_t cap, int mapped);

#endif
