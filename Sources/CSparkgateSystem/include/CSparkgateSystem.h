#ifndef CSPARKGATE_SYSTEM_H
#define CSPARKGATE_SYSTEM_H

/* System calls Swift cannot reach directly: prctl is variadic, which Swift does not import, and mallopt's
   constants are macros of malloc.h. */

/* Makes this process the reaper of its descendants' orphans (PR_SET_CHILD_SUBREAPER): a daemon an engine
   leaves behind becomes the gateway's child instead of init's, so the gateway sees it and reaps it.
   Returns 0, or -1 with errno set (or where the system lacks it). */
int csparkgate_become_child_subreaper(void);

/* Keeps heap blocks up to `bytes` in the heap (glibc's mallopt: M_MMAP_THRESHOLD and M_TRIM_THRESHOLD): a
   streamed result's buffers of a few MiB are otherwise mapped and unmapped on every flush, and the page faults
   that refill them took over a third of the gateway's CPU per streamed GiB. Returns 0, or -1 where the C
   library is not glibc or refuses. */
int csparkgate_keep_large_buffers(int bytes);

#endif
