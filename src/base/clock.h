/*
 * clock.h — the clocks: monotonic for intervals and deadlines, real time
 * for what is compared with file times.
 */
#ifndef LARDER_CLOCK_H
#define LARDER_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in milliseconds: intervals, deadlines, waits. */
uint64_t ldr_mono_ms(void);
/* CLOCK_MONOTONIC in nanoseconds: timing what one call costs. */
int64_t ldr_mono_ns(void);
/* CLOCK_MONOTONIC_COARSE in milliseconds: cheap enough for a hit path,
 * a tick (a few ms) coarse. */
int64_t ldr_coarse_ms(void);
/* CLOCK_REALTIME in ns since the epoch (file times are on this clock). */
int64_t ldr_now_ns(void);

#endif
