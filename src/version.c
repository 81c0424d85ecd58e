/*
 * version.c — file versions (DESIGN §8). Being written: see issue 4.
 */
#include "err.h"
#include "store.h"

int larder_files_version(larder *db, const char *const *paths, size_t n,
			 unsigned flags, char out[LARDER_FILES_VERSION_LEN + 1])
{
	(void)paths, (void)n, (void)flags;
	out[0] = 0;
	return ldr_fail(db, LARDER_EINVAL, 0, "file versions: not built yet");
}
