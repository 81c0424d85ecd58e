/*
 * self.h — who this process is (lease.h's ldr_self), kept per handle
 * (self.c).
 */
#ifndef LARDER_SELF_H
#define LARDER_SELF_H

#include "lease.h"
#include "store.h"

/* ldr_self_get for db's host, kept per handle and process (asked again
 * after a fork, or in a process of another pid), since reading it costs
 * six system calls: for lease_acquire and the same-host judgement. */
void ldr_self_cached(struct ldr_self *me, larder *db);
/* Free what ldr_self_cached kept (at the handle's close). */
void ldr_self_cached_free(larder *db);

#endif
