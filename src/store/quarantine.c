/*
 * quarantine.c — moves entries that failed verification aside to
 * DIR/quarantine/ (removing them where that cannot be done), so that no
 * reader meets them again and an operator can look at them; and keeps
 * the namespace's usage right when an entry leaves by our hand.
 */
#include "quarantine.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "memo.h"
#include "stats.h"

void ldr_entry_gone(larder *db, const char *rel, int64_t bytes)
{
	ldr_memo_forget(db, rel);
	char ns[LARDER_NS_MAX + 1];
	const char *p = rel + 3, *slash = strchr(p, '/');
	if (strncmp(rel, "ns/", 3) != 0 || !slash || slash[1] != 'e' ||
	    slash[2] != '/' || (size_t)(slash - p) > LARDER_NS_MAX)
		return;
	memcpy(ns, p, (size_t)(slash - p));
	ns[slash - p] = '\0';
	ldr_usage_add(db, ns, -bytes, -1);
}

int ldr_quarantine(larder *db, const char *rel, dev_t dev, ino_t ino,
		   const char *why)
{
	const char *base;
	char dst[128], rnd[17];
	uint8_t r[8];
	int dfd = ldr_open_parent(db, rel, &base);
	if (dfd < 0)
		return 0;
	int qfd = ldr_open_beneath(db->rootfd, "quarantine",
				   O_RDONLY | O_DIRECTORY, 0);
	if (qfd < 0 && errno == ENOENT &&
	    ldr_mkdirs(db->rootfd, "quarantine", db->dmode) == 0)
		qfd = ldr_open_beneath(db->rootfd, "quarantine",
				       O_RDONLY | O_DIRECTORY, 0);
	ldr_random(r, sizeof r);
	ldr_hex(r, sizeof r, rnd);
	snprintf(dst, sizeof dst, "%.40s.%s", base, rnd);
	/* Its size now, for usage: once moved it is no longer the store's. */
	struct stat st;
	int64_t bytes = fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
				st.st_dev == dev && st.st_ino == ino
			    ? (int64_t)st.st_size
			    : 0;
	int moved =
	    qfd >= 0 ? ldr_take_away(dfd, base, dev, ino, qfd, dst) : -1;
	if (moved < 0) {
		/* Cannot keep it for inspection (no quarantine/, or a
		 * filesystem that will not rename across directories): at
		 * least stop serving attempts at it. Only a removal by this
		 * call counts as one: a file gone meanwhile was not moved. */
		int e = errno;
		moved = ldr_remove_same_by_us(db, rel, dev, ino) == 1;
		ldr_log(db, LARDER_LOG_WARN,
			"cannot move '%s/%s' to quarantine: %s%s", db->dir, rel,
			strerror(e), moved ? " (removed instead)" : "");
	}
	if (moved == 1) {
		ldr_entry_gone(db, rel, bytes);
		/* Its mtime becomes the time it was quarantined (the store
		 * filesystem's clock): the sweep keeps it that long. */
		if (qfd >= 0)
			utimensat(qfd, dst, NULL, AT_SYMLINK_NOFOLLOW);
		ldr_count(db, LARDER_CTR_QUARANTINED);
		ldr_log(db, LARDER_LOG_WARN, "quarantined '%s/%s': %s", db->dir,
			rel, why);
	}
	ldr_close(qfd);
	ldr_close(dfd);
	return moved == 1;
}

void ldr_quarantine_entry(larder *db, const char *ns, const void *key,
			  size_t klen, const void *ver, size_t vlen,
			  const char *why)
{
	uint8_t h[16];
	char hex[33], rel[LDR_REL_MAX];
	struct stat st;
	ldr_entry_hash(ns, key, klen, ver, vlen, h);
	ldr_hex(h, 16, hex);
	ldr_file_rel(rel, ns, 'e', hex);
	/* Another good entry may replace it between this look and the move:
	 * then that one goes to quarantine too, and costs a recomputation,
	 * nothing worse. */
	if (ldr_lstat(db, rel, &st) == 0) {
		ldr_count(db, LARDER_CTR_CHECKSUM_FAIL);
		ldr_quarantine(db, rel, st.st_dev, st.st_ino, why);
	}
}
