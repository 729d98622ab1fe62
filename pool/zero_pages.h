/* zero_pages: gives the kernel back the pages of a heap block that hold only
 * zeros.
 *
 * Libraries zero whole structures and then fill a little of them; wolfSSL's
 * per-connection session, for one, reserves room for a nine-certificate peer
 * chain and keeps it for the connection's life. On private anonymous memory
 * (all of malloc's), MADV_DONTNEED on an all-zero page changes nothing a
 * reader can see: the page reads as zeros again, and a later write faults in
 * a fresh one. So the block stays valid and its owner need not know. */
#ifndef VOLLEY_ZERO_PAGES_H
#define VOLLEY_ZERO_PAGES_H

#include <stddef.h>

/* p must be a live block from this process's malloc (its extent is taken
 * from malloc_usable_size), owned by the calling thread for the duration
 * of the call. Returns the bytes given back. */
size_t zero_pages_release(void *p);

#endif
