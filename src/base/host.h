/*
 * host.h — who this process runs on: the host's name as it appears in
 * temp and lease names, and this boot of its kernel.
 */
#ifndef LARDER_HOST_H
#define LARDER_HOST_H

#include <stddef.h>
#include <stdint.h>

/* The host name, with anything but [A-Za-z0-9-] made '_' ("unknown" if
 * there is none): it goes into file names. */
void ldr_hostname(char *buf, size_t len);

/* This boot of this host's kernel (/proc/sys/kernel/random/boot_id, a
 * UUID random at each boot) as 16 bytes: 0, or -1 if it cannot be read.
 * Read once per process (it cannot change while the process lives). */
int ldr_boot_id(uint8_t out[16]);

/* The same as the kernel prints it (36 characters, lower-case hex), or
 * "unknown". */
void ldr_boot_id_text(char out[37]);

#endif
