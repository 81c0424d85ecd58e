/*
 * naming.h — how entries and head hints are named in the store
 * (store.c, docs/format.md): hashes of length-prefixed fields, and the
 * fan-out paths beneath the root.
 */
#ifndef LARDER_NAMING_H
#define LARDER_NAMING_H

#include <stddef.h>
#include <stdint.h>

/* Paths beneath the root ("ns/<64>/e/xx/yy/<32>" and temp names fit). */
#define LDR_REL_MAX 192

/* The internal namespace where file versions remember content hashes
 * (version.c). Users cannot get or put there (names starting with '.'
 * are refused); walking and inspecting it by name is allowed. */
#define LDR_FILES_NS ".files"

/* Entry and head names: XXH3-128 of length-prefixed fields, so no two
 * (ns, key, version) triples frame alike. */
void ldr_entry_hash(const char *ns, const void *key, size_t klen,
		    const void *ver, size_t vlen, uint8_t out[16]);
/* ldr_entry_hash of a namespace whose length (strlen) is known. */
void ldr_entry_hash_n(const char *ns, size_t nslen, const void *key,
		      size_t klen, const void *ver, size_t vlen,
		      uint8_t out[16]);

void ldr_head_hash(const char *ns, const void *key, size_t klen,
		   uint8_t out[16]);
/* ldr_head_hash of a namespace whose length (strlen) is known. */
void ldr_head_hash_n(const char *ns, size_t nslen, const void *key, size_t klen,
		     uint8_t out[16]);

/* "ns/<ns>/<kind>/h0h1/h2h3" and, with the file, "/<hex32>". */
void ldr_dir_rel(char *out, const char *ns, char kind, const char *hex);

void ldr_file_rel(char *out, const char *ns, char kind, const char *hex);

/* What names an entry to a backend of the storage seam (backend.h). The
 * hash of its name is the backend's key for it; ns, key and version are
 * checked against the header by the reader. */
struct ldr_name {
	const char *ns;
	const void *key;
	size_t klen;
	const void *ver; /* NULL with vlen 0: no version (heads, leases) */
	size_t vlen;
	uint8_t hash[16];  /* ldr_entry_hash(ns, key, ver), when ver is set */
	uint8_t khash[16]; /* ldr_head_hash(ns, key): heads, leases */
};

/* Fill both hashes of n from its fields (ver may be NULL). */
void ldr_name_init(struct ldr_name *n, const char *ns, const void *key,
		   size_t klen, const void *ver, size_t vlen);

#endif
