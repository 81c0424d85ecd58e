/*
 * open.h — opening a store (open.c): the marker, the mode, init; the
 * facade calls these.
 */
#ifndef LARDER_OPEN_H
#define LARDER_OPEN_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Whether mode is one of the five a store may have (0600, 0640, 0644,
 * 0660, 0664). */
int ldr_mode_valid(unsigned mode);

/* The widest of them that the umask `mask` allows. */
unsigned ldr_mode_for_umask(unsigned mask);

/* Open (or with LARDER_OPEN_CREATE, create) the store at dir: the store
 * layer's part of larder_open, counters and recency included. */
int ldr_store_open(larder **out, const char *dir, const larder_opts *opts);
/* Its part of larder_close, after the slots are cleared. */
void ldr_store_close(larder *db);

#endif
