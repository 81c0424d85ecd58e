/*
 * config.h — config files and the namespace TTL (config.c).
 */
#ifndef LARDER_CONFIG_H
#define LARDER_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* The namespace's default TTL in seconds (0 = none), for a put: kept per
 * handle, so that another process's change is seen within a second;
 * this handle's own (ldr_config_replace) at once. */
int64_t ldr_ns_ttl(larder *db, const char *ns);
/* Make what ldr_ns_ttl kept ms older (tests: the interval passed). */
void ldr_ns_ttl_age(larder *db, int64_t ms);

/* Config files: DIR/config (dirrel "") and DIR/ns/<ns>/config (dirrel
 * "ns/<ns>"), text with one "name value" a line. */
#define LDR_CONFIG_MAX 4096

/* Read one into buf (NUL-terminated; "" if there is none). 0, or -1 with
 * errno. */
int ldr_config_read(larder *db, const char *dirrel, char *buf, size_t size);

/* Replace it atomically (temp + rename) with `lines` first, then every
 * old line whose name `lines` does not set. 0 or a recorded error. */
int ldr_config_replace(larder *db, const char *dirrel, const char *lines);

/* What follows "name " on its line of config text, or "". */
const char *ldr_conf_val(const char *text, const char *name);
/* A "name N" line's N if N >= 0, else 0. */
int64_t ldr_conf_num(const char *text, const char *name);

#endif
