/*
 * sweep.h — removing the debris that crashed processes leave in a store:
 * temp files, leases, break files, and quarantined entries kept long
 * enough for inspection (docs/operations.md "Sweeping").
 *
 * The cleaning pass (gc.c, `larder gc`) runs the sweep; larder_sweep() in
 * larder.h is the same call for programs and tests.
 */
#ifndef LARDER_SWEEP_H
#define LARDER_SWEEP_H

#include <stdint.h>

#include "larder.h"

/* Ages, by the store filesystem's clock (a file's mtime against the mtime
 * of a file the sweep creates: never our clock against another host's,
 * docs/operations.md). Why each number: sweep.c. */
#define LDR_SWEEP_TMP_DEAD_S 300	     /* this host's temp, pid gone */
#define LDR_SWEEP_TMP_MAX_S (24 * 3600)	     /* any temp */
#define LDR_SWEEP_LEASE_MAX_S 3600	     /* a lease without heartbeat */
#define LDR_SWEEP_BREAK_S 600		     /* a break file */
#define LDR_SWEEP_QUAR_MAX_S (7 * 24 * 3600) /* a quarantined entry */

/* Sweep namespace ns (NULL = the whole store, quarantine/ included).
 * dry_run: decide and report, remove nothing. *r is zeroed first, then
 * filled. Each file removed counts LARDER_CTR_TMP_SWEPT and is logged at
 * INFO; what is kept is logged at DEBUG with the reason. Files that vanish
 * during the walk (ENOENT, ESTALE) were removed by someone else: fine.
 * Returns 0, or the first error met (the walk goes on past it, so one
 * unreadable directory does not stop the rest). */
int ldr_sweep(larder *db, const char *ns, int dry_run, larder_sweep_report *r);

#endif
