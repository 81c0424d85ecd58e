/*
 * quarantine.h — moving bad entries aside (quarantine.c), and the usage
 * an entry takes with it when it leaves by our hand.
 */
#ifndef LARDER_QUARANTINE_H
#define LARDER_QUARANTINE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "store.h"

/* Quarantine the published entry (ns, key, ver): one that passed its
 * checksum but whose content its reader rejects. Counts and logs. */
void ldr_quarantine_entry(larder *db, const char *ns, const void *key,
			  size_t klen, const void *ver, size_t vlen,
			  const char *why);

/* Move the entry at `rel` to quarantine/, if it is still the file (dev,
 * ino) that was found bad. Counts and logs; 1 if it moved it. */
int ldr_quarantine(larder *db, const char *rel, dev_t dev, ino_t ino,
		   const char *why);

/* An entry file at rel ("ns/<ns>/e/...") of `bytes` left the store by
 * our hand: its namespace's usage shrinks. */
void ldr_entry_gone(larder *db, const char *rel, int64_t bytes);

#endif
