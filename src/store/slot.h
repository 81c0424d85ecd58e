/*
 * slot.h — per-handle state of the layers above the store (store.c): a
 * layer hangs its state on the handle under a key of its own (the address
 * of a static in its file), with a destructor larder_close calls, last
 * set first (the pattern of SQLite's sqlite3_set_clientdata). The handle
 * itself carries only the store's own state.
 */
#ifndef LARDER_SLOT_H
#define LARDER_SLOT_H

#include "larder.h"

/* What hangs on key, or NULL. */
void *ldr_slot_get(larder *db, const void *key);

/* Hang ptr (with its destructor) on key if the slot holds `old` now
 * (NULL: nothing), destroying old: 0; 1 if it holds something else (the
 * caller keeps ptr); -1 if every slot is taken. Thread-safe. */
int ldr_slot_swap(larder *db, const void *key, void *old, void *ptr,
		  void (*destroy)(void *));

#endif
