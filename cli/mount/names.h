/*
 * names.h — how `larder mount` spells keys and versions as file names
 * (docs/fuse.md, "Names"): a file name cannot hold '/' nor a NUL byte,
 * nor be "", "." or "..", so those are percent-encoded, and so is '%'
 * itself; every other byte (spaces, newlines, bytes that are not UTF-8)
 * stands for itself. Each byte string has exactly one name: decoding
 * refuses any spelling the encoder would not have made, so two names
 * never lead to one entry.
 */
#ifndef LARDER_MOUNT_NAMES_H
#define LARDER_MOUNT_NAMES_H

#include <stddef.h>

/* The longest file name the kernel passes (NAME_MAX). */
#define MOUNT_NAME_MAX 255

/* Encode len bytes of p into out (MOUNT_NAME_MAX + 1 bytes), NUL-ended.
 * Returns the name's length, or -1 if it would be longer than
 * MOUNT_NAME_MAX (such a key has no name in the mount). */
int mount_name_encode(char out[MOUNT_NAME_MAX + 1], const void *p, size_t len);

/* Decode name into out (at least strlen(name) bytes); the length in
 * *outlen. Returns 0, or -1 if name is not the encoding of any bytes. */
int mount_name_decode(unsigned char *out, size_t *outlen, const char *name);

#endif
