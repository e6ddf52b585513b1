#ifndef CSPARKGATE_SYSTEM_H
#define CSPARKGATE_SYSTEM_H

/* System calls Swift cannot reach directly: prctl is variadic, which Swift does not import. */

/* Makes this process the reaper of its descendants' orphans (PR_SET_CHILD_SUBREAPER): a daemon an engine
   leaves behind becomes the gateway's child instead of init's, so the gateway sees it and reaps it.
   Returns 0, or -1 with errno set (or where the system lacks it). */
int csparkgate_become_child_subreaper(void);

#endif
