/*
 * self.h — who this process is (lease.h's ldr_self), kept per handle,
 * and its number for a handle (self.c).
 */
#ifndef LARDER_SELF_H
#define LARDER_SELF_H

#include "lease.h"
#include "store.h"

/* ldr_self_get for db's host, kept per handle and process (asked again
 * after a fork, or in a process of another pid), since reading it costs
 * six system calls: for lease_acquire and the same-host judgement. */
void ldr_self_cached(struct ldr_self *me, larder *db);
/* Free what ldr_self_cached and ldr_self_epoch kept (at the handle's
 * close). */
void ldr_self_cached_free(larder *db);

/* A number naming this process for db, never 0: the same for every call
 * in one process, and in a child made by fork (or by clone(2) without
 * CLONE_VM, which runs no fork handlers) different from every number its
 * parent was given. What a handle keeps per process (connections, the
 * stage ids' seed) is kept with it and made again when it differs. No
 * system call once a process has its number, where the kernel wipes a
 * page in a child (MADV_WIPEONFORK, Linux 4.14); elsewhere a getpid. */
uint64_t ldr_self_epoch(larder *db);

#endif
