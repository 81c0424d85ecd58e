/*
 * file.h — an entry or head file loaded with bounded memory (read or
 * mapped, or only its header), a payload's flow (hashed, decompressed,
 * handed to a sink), and the judgement of an entry file against what was
 * asked (file.c).
 */
#ifndef LARDER_FILE_H
#define LARDER_FILE_H

#include <stdint.h>
#include <sys/types.h>
#include <zstd.h>

#include "fmt.h"
#include "store.h"

/* Payload bytes read per pread when a file is judged or streamed in
 * chunks: memory stays bounded whatever the file's size, and 1 MiB makes
 * the syscalls' cost vanish against the hashing. */
#define LDR_CHUNK (1u << 20)

/* How ldr_file_load treats a file larger than its first read. */
enum {
	LDR_LOAD_WHOLE,	 /* larder_get: mapped if safe and large, else read */
	LDR_LOAD_STREAM, /* larder_get_stream: mapped if safe and large; else,
			beyond LDR_CHUNK, only its header (partial) */
	LDR_LOAD_SCAN,	 /* walk, publish: never mapped; beyond LDR_CHUNK, only
			its header (partial) */
	LDR_LOAD_HEADER	 /* larder_get_unverified: never mapped; beyond the
			first read, only its header (partial) */
}; /* (SCAN and HEADER last: file.c tests how >= LDR_LOAD_SCAN) */

/* A whole entry file, read into memory or mapped. The fd stays open until
 * ldr_file_free() (or ldr_file_drop_fd()), so that the file's identity can
 * be taken when it turns out bad: a hit never pays for an fstat. */
struct ldr_file {
	uint8_t *p;
	/* Bytes before p in the same allocation, which belong to whoever
	 * asked for them (ldr_file_load's pre): ldr_file_free frees from
	 * p - pre. 0 when p is an allocation (or a mapping) of its own. */
	size_t pre;
	size_t len;    /* bytes at p */
	uint64_t size; /* the whole file (more than len when partial) */
	int mapped;
	/* Only the header is at p; the payload is read from fd in chunks
	 * when needed (a large file that is not ours to map). */
	int partial;
	/* Only this user, root or the store's owner can change the file
	 * (docs/security.md): it may be mapped, and trusted by
	 * LARDER_OPEN_TRUST_LOCAL. Known only when have_ident. */
	int safe;
	/* Not a regular file (a FIFO, directory, socket, device or
	 * symlink): its S_IFMT type, and p is NULL. */
	unsigned ftype;
	int fd;
	/* A timed load (file.c, "Map or read"): how it was loaded, 1 mapped,
	 * 2 read or 3 mapped and populated, and when it began
	 * (CLOCK_MONOTONIC ns); 0 = not timed.
	 * ldr_file_learn() takes the time once the payload is verified. */
	int via;
	int64_t t0;
	int have_ident;
	dev_t dev;
	ino_t ino;
	/* p - pre is a reused buffer (file.c, "Reused buffers") lent from
	 * these; it goes back there when freed. NULL otherwise. */
	struct ldr_bufs *bufs;
};
/* Load the file at rel (beneath the root) to judge an entry or a head
 * with bounded memory (walk, verify, publish, heads): a file larger than
 * the first read is never mapped nor read whole, only its header
 * (partial); ldr_entry_check then reads the payload in chunks. With
 * noatime, the file's access time does not change (looking is not using,
 * and the cleaning goes by it). Anything but a regular file loads as an
 * empty one with ftype set (the check calls it corrupt). Returns 0, or -1
 * with errno. (larder_get loads with ldr_file_load.) */
int ldr_file_scan(larder *db, const char *rel, struct ldr_file *f, int noatime);
/* A timed load's payload is verified: remember what it cost (file.c). */
void ldr_file_learn(larder *db, struct ldr_file *f);
/* Set what verified loads of `size` bytes cost mapped, read and mapped
 * with MAP_POPULATE, as if measured (tests). */
void ldr_file_set_cost(larder *db, uint64_t size, uint64_t map_ns,
		       uint64_t read_ns, uint64_t populate_ns);
/* Fill f->dev and f->ino (before the fd is dropped). */
void ldr_file_ident(struct ldr_file *f);
void ldr_file_drop_fd(struct ldr_file *f);
void ldr_file_free(struct ldr_file *f);
/* Free the allocation at p - pre of a file read into memory (which may
 * hold f itself: nothing of f is read after it): back to its handle's
 * reused buffers if it is one of them, else free(). */
void ldr_file_free_alloc(const struct ldr_file *f);
/* The largest prefix (ldr_file_load's pre) a reused buffer has room for
 * (file.c, "Reused buffers"): larder_get's entry handle fits. */
#define LDR_BUFS_PRE 512u
/* A handle's reused buffers (file.c): made at open (none if out of
 * memory: every read then allocates its own), and let go at close;
 * buffers still lent to entries free them when those are released. */
void ldr_bufs_open(larder *db);
void ldr_bufs_close(larder *db);
/* How many it has made and not freed, or -1 with none (tests). */
int ldr_bufs_made(const larder *db);

/* What ldr_entry_check verifies besides the header */
#define LDR_CHECK_HASH 0x1u /* the payload checksum */
#define LDR_CHECK_ZSTD 0x2u /* a zstd payload decompresses to its length */

/* What a loaded entry file (at rel, for messages) is, checked against
 * what was asked for (key or ver NULL = do not compare). Fills h
 * (h->hdr_len is 0 unless the header decoded); returns a
 * larder_entry_state and a reason for anything but OK. `check` is
 * LDR_CHECK_* flags; a partial file's payload is read from its fd in
 * chunks (one that changes meanwhile is corrupt), and a failure to read
 * it is a negative LARDER_E* code, recorded. */
int ldr_entry_check(larder *db, const struct ldr_file *f, const char *rel,
		    const char *ns, const void *key, size_t klen,
		    const void *ver, size_t vlen, unsigned check, ldr_hdr *h,
		    const char **why);

/* Record that the entry file at rel (size bytes) is larger than db holds
 * in memory (max_in_memory): LARDER_ENOMEM, the message saying so, and
 * with stream set, that larder_get_stream() reads it. */
int ldr_fail_too_big(larder *db, const char *rel, uint64_t size, int stream);

/* Load the file at rel into f, as `how` (LDR_LOAD_*) says; noatime: its
 * access time does not change. A small file read whole lands in one
 * allocation after `pre` bytes the caller may use (f->pre says whether it
 * did: larder_get puts the entry handle there, one allocation a hit).
 * 0, or -1 with errno. */
int ldr_file_load(larder *db, const char *rel, struct ldr_file *f, int noatime,
		  int how, size_t pre);

/* ldr_file_load of the file open at fd, which f owns from here (closed on
 * failure too): for an entry handle that holds its file open
 * (larder_entry_verify). */
int ldr_file_load_fd(larder *db, int fd, struct ldr_file *f, int how);

/* ldr_file_load (the access time changing) of an entry's or a head's
 * file, opened from its directory if the handle holds that open (file.c).
 * Start with *h zeroed. If that directory does not have the file, -1
 * with ENOENT or ESTALE and h->gone set: the caller must look again (call
 * again with the same h), which looks from the root. */
struct ldr_held {
	struct ldr_edir *d; /* the held directory tried, or NULL */
	int gone;	    /* it said the file is not there */
	int tried;
};
int ldr_file_load_held(larder *db, const char *rel, struct ldr_file *f, int how,
		       size_t pre, struct ldr_held *h);

/* Close the directories ldr_file_load_held held open (larder_close). */
void ldr_edirs_close(larder *db);

/* Load the entry file at rel as ldr_file_load does (its access time
 * changing: a read is a use), looking twice when it seems gone (ENOENT,
 * ESTALE: a network filesystem may have replaced its handle). 0,
 * LARDER_ENOTFOUND (not recorded: the caller says what was missing), or
 * another code, recorded. The read of larder_get and of the directory
 * backend (be_dir.c). It opens the file from its namespace's entry
 * directory when the handle holds that open, and from the root when
 * that finds nothing there. */
int ldr_entry_load(larder *db, const char *rel, struct ldr_file *f, int how,
		   size_t pre);

struct ldr_flow {
	const ldr_hdr *h;
	struct ldr_hasher *st; /* hash of the stored bytes, or NULL */
	ZSTD_DCtx *z;	       /* decompressing a zstd payload, or NULL */
	uint8_t *zbuf;	       /* its output, ZSTD_DStreamOutSize() bytes */
	size_t zcap;
	int frame_done;	     /* the zstd frame ended */
	uint64_t out;	     /* bytes handed on (decompressed, if z) */
	larder_sink_fn sink; /* NULL: checked, then dropped */
	void *payload;
	int sink_rc; /* what the sink returned when it stopped the flow */
	unsigned long sink_mark; /* ldr_err_mark() before that call */
	const char *why;
};

/* flow_* return: 0, LARDER_ECORRUPT (fl->why), LARDER_ENOMEM, or: */
#define LDR_FLOW_SINK 1 /* the sink stopped the flow: fl->sink_rc */

/* Begin a flow of h's stored payload: hashed (hash), decompressed
 * (unzstd, for a zstd payload), handed to sink (NULL: only checked). */
int ldr_flow_begin(struct ldr_flow *fl, const ldr_hdr *h, int hash, int unzstd,
		   larder_sink_fn sink, void *payload);
int ldr_flow_feed(struct ldr_flow *fl, const uint8_t *p, size_t n);
/* The flow's end: its length and checksum checked. */
int ldr_flow_end(struct ldr_flow *fl);
void ldr_flow_free(struct ldr_flow *fl);
/* Feed the stored payload of a partial file to fl from its fd in chunks:
 * as ldr_flow_*, or a negative code (recorded) when it cannot be read. */
int ldr_feed_from_file(larder *db, const struct ldr_file *f, const char *rel,
		       struct ldr_flow *fl);

#endif
