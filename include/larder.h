/*
 * larder.h — the whole public API of liblarder.
 *
 * larder is a shared cache for expensive data. A *store* is a directory on
 * local disk or on a shared filesystem (NFS, GlusterFS, CephFS, Lustre).
 * Inside it, *entries* are immutable: (namespace, key, version, payload,
 * metadata), checksummed with XXH3-128 and published atomically with link(),
 * so that a reader anywhere sees either the whole entry or nothing.
 *
 * If it is not in this header it is not API.
 *
 * Guarantees
 * ----------
 *  - Nothing torn, corrupt or stale is returned. Every read verifies the
 *    header and the payload checksum (unless LARDER_OPEN_TRUST_LOCAL is
 *    given), or, for a repeat hit, hands out what an earlier read of the
 *    same file by this handle verified (see Repeat hits); what it hands
 *    out is exactly what was verified (see Memory). A bad entry, or
 *    anything at an entry's name that is not a regular file, is moved to
 *    the store's quarantine/ directory, counted, and reported as a miss
 *    (LARDER_ENOTFOUND).
 *  - Readers take no lock and write nothing (the one exception: moving a
 *    corrupt entry to quarantine/).
 *  - A publish either makes the whole entry visible under its final name or
 *    leaves nothing behind but an error.
 *
 * Calling sequence
 * ----------------
 *    larder *db;
 *    larder_open(&db, "/shared/cache", NULL);            // store must exist
 *    larder_entry *e;
 *    rc = larder_get(&e, db, "default", key, klen, ver, vlen);
 *    if (rc == 0) { use(larder_entry_data(e), larder_entry_size(e));
 *                   larder_entry_release(e); }
 *    else if (rc == LARDER_ENOTFOUND) {
 *        larder_writer *w;
 *        larder_writer_begin(&w, db, "default", key, klen, ver, vlen, NULL);
 *        while (more) larder_writer_write(w, buf, n);   // streamed, hashed
 *        larder_writer_commit(w);                       // or _abort(w)
 *    }
 *    larder_close(db);
 *
 * Error handling
 * --------------
 * Functions that can fail return int: 0 (or, where documented, a positive
 * result such as LARDER_EXISTS) on success, a negative LARDER_E* code on
 * failure. larder_strerror(rc) gives a fixed string for a code. Each
 * handle keeps, for each calling thread, the message of that thread's
 * last failure on it, naming the path and the operation (larder_errmsg),
 * and the OS errno behind it (larder_errno): a failure on one handle
 * leaves another's message intact, and threads sharing a handle never
 * see each other's (as errno). EINTR never escapes the library.
 *
 * Callbacks
 * ---------
 * Every callback takes a `void *payload` last, given with it (callback
 * and payload are a function's last arguments). Those that return int
 * (larder_loader_fn, larder_version_fn, larder_sink_fn, larder_ns_fn,
 * larder_walk_fn) return 0 to go on. A failure inside one is never taken
 * for the library's own: a callback that returns the negative code of a
 * larder call it made on the same handle, which failed as its last
 * failure there (larder_fill_write(), say), has that code and message
 * passed on as is; any other negative value (and, from a loader or a
 * version_fn, any positive one) fails the call with LARDER_EUSER and a
 * message giving the value. A positive value from a sink, walk or
 * namespace callback stops it and is returned as is: use it to stop
 * early, or to carry an error of your own.
 *
 * Options, reports and defaults
 * -----------------------------
 * Each struct passed in (options) or filled (reports) has a `version`
 * first, its LARDER_*_VERSION, a LARDER_*_INIT initialiser and a
 * larder_*_init() function that sets the same (for languages that cannot
 * expand a macro). Start from one of them: a version the library does not
 * know is LARDER_EINVAL. The rule for numbers and pointers in them: 0 (or
 * NULL) means the default, which each field names; the few fields where 0
 * is itself a meaningful value say so, and how to ask for the default.
 * Structs the library hands to a callback (larder_entry_info,
 * larder_wait_info) carry the version the library filled.
 *
 * Threads
 * -------
 * A `larder *` handle may be used by many threads at once. An
 * `larder_entry *` or `larder_writer *` belongs to one thread at a time
 * (hand it over with your own synchronisation). larder_errmsg() and
 * larder_errno() report the last failure of the *calling thread* on that
 * handle. The library installs no signal handlers and prints nothing:
 * logging goes through the callback in larder_opts. The only thread it
 * starts is the heartbeat of a lease held by larder_get_or_fill(), which
 * runs while that call's loader runs and is joined before it returns.
 *
 * fork()
 * ------
 * After fork() the child may keep using the store handle and any entry
 * handles it inherited (their data stays valid); it makes its own
 * database connections (larder_sql), never touching its parent's. A
 * writer begun before the fork belongs to the parent: the child must
 * neither commit nor abort it. Do not fork from inside a loader (the
 * child would not have the lease's heartbeat thread); exec'ing a program
 * from it (fork + exec) is fine.
 *
 * Memory
 * ------
 * The data pointer of an entry stays valid until larder_entry_release(),
 * even if the entry's file is deleted or replaced meanwhile. Small payloads
 * are read into a private buffer. A large one may be mapped read-only
 * (zero-copy, shared page cache across processes) only when no hand but
 * this user's, root's or the store owner's can change its file: the file
 * is owned by one of them and has no group or other write bit. Any other
 * (an entry another member of a group store published, who could chmod it
 * and write into it) is read into private memory and verified there, so
 * that what the caller gets is exactly what was verified. Up to 8 MiB a
 * handle maps or reads such a payload, whichever it measured cheaper on
 * this machine (where page faults are dear, a copy is); larger ones are
 * always mapped, never copied into the heap. Entry files are
 * immutable: larder never writes into a published one. If a trusted hand
 * writes into a mapped file in place anyway, an entry already held shows
 * those bytes (it shares the page cache); the next lookup catches the
 * damage. A compressed (zstd) payload is decompressed into private memory,
 * at most larder_opts.max_in_memory bytes of it (1 GiB by default);
 * larder_get_stream() reads any entry with bounded memory.
 * On a network filesystem (NFS, FUSE such as GlusterFS, CephFS, Lustre,
 * CIFS) large payloads are read, not mapped: there, when another client
 * removes a file, a mapping's pages can be dropped with nothing left to
 * read them back from, and an access faults (SIGBUS). A copy cannot. With
 * LARDER_OPEN_MAP_NETWORK they are mapped anyway (zero-copy), for stores
 * whose entries are never removed while another host may hold them.
 *
 * Repeat hits
 * -----------
 * A handle keeps a memo of the entries it has verified (docs/format.md,
 * "The memo of verified entries"): a repeat hit of the same (namespace,
 * key, version) is served from the bytes an earlier hit verified,
 * neither read nor hashed again (counted in LARDER_CTR_MEMO_HITS as well
 * as in hits); an entry is taken into the memo at its second read, so a
 * first hit keeps nothing. The guarantee this changes: the memo looks at the
 * entry file's identity (device, inode, size, mtime, ctime) once a second
 * (larder_opts.memo_check_ms), so a file removed, replaced or written
 * into stops being served within that interval; it reads and verifies
 * the file from disk again every minute (memo_rehash_ms), so a byte
 * flipped on disk that leaves the file's identity as it was is seen at
 * that next re-hash, not at once. Expiry is looked at on every hit. What
 * a memo hit hands out was verified and is held in this process's memory
 * (or a mapping only trusted hands can change), so it is never bytes
 * that were not published. It is bounded (memo_entries, memo_bytes;
 * least recently used first), shared by the handle's threads, and
 * emptied in a forked child, which verifies again. With
 * LARDER_OPEN_VERIFY_ALWAYS every read verifies the file.
 * A version-less lookup (ver NULL) also remembers the version the key's
 * head hint named (docs/format.md, "The head cache"): within memo_check_ms
 * it is taken from memory, then the hint's identity is looked at again.
 * So a newer head published by another process or handle is seen after
 * at most memo_check_ms (1 s by default); this handle's own publishes and
 * removals at once. It is bounded by memo_entries, emptied in a forked
 * child, and off with LARDER_OPEN_VERIFY_ALWAYS.
 *
 * Trust and permissions
 * ---------------------
 * A store has an owner (who made it), and may be shared with a group
 * (docs/security.md). Its mode, chosen at creation (create_mode, or the
 * umask), decides every file's bits whatever the calling process's umask:
 * published entries and heads read-only to all, the marker and config
 * the owner's, nothing ever writable by others. A member of a
 * group-shared store may publish, remove or forge entries (checksums
 * detect damage, not authorship), but cannot make a reader accept bytes
 * that were not published whole, make the library touch anything outside
 * the store (no path inside it is resolved through a symbolic link), widen
 * the store's permissions, make a reader allocate out of proportion to
 * what is on disk, or stall a key's fills or block its entry for good.
 * larder_open() refuses (LARDER_EPERM) a store whose marker or top
 * directories others may write or someone else owns, unless
 * LARDER_OPEN_ALLOW_UNSAFE_MODE; walks skip and count (walk_skipped) what
 * larder did not make.
 */
#ifndef LARDER_H
#define LARDER_H

#include <signal.h> /* sig_atomic_t */
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Symbols of the shared library; everything else in it is hidden. */
#if defined(LARDER_BUILDING) && defined(__GNUC__)
#define LARDER_API __attribute__((visibility("default")))
#else
#define LARDER_API
#endif

#define LARDER_VERSION_MAJOR 0
#define LARDER_VERSION_MINOR 2
#define LARDER_VERSION_PATCH 0
#define LARDER_VERSION_STRING "0.2.0"

/* The entry format this build writes (docs/format.md). */
#define LARDER_FORMAT_VERSION 1

/* The library's version string, e.g. "0.2.0" (may differ from the header's
 * if the program was built against another version). */
LARDER_API const char *larder_version(void);

/* ---------------------------------------------------------------------- */
/* Results. Fixed numbers: they are part of the ABI.                      */

/* Success, and the one positive result: not an error. LARDER_EXISTS is
 * returned only by larder_writer_commit() and larder_put(), when an
 * identical (key, version) entry was already published by someone else
 * (the call succeeded: the entry is there). */
#define LARDER_OK 0
#define LARDER_EXISTS 1

/* Error codes: always negative. */
/* clang-format off */
#define LARDER_EINVAL    (-1)  /* bad argument */
#define LARDER_ENOTFOUND (-2)  /* no such entry (a miss), store or namespace */
#define LARDER_EBUSY     (-3)  /* someone else holds what we need */
#define LARDER_ETIMEOUT  (-4)  /* a bounded wait ran out */
#define LARDER_ECORRUPT  (-5)  /* bad bytes: checksum, framing, magic */
#define LARDER_EVERSION  (-6)  /* store or entry written by a newer format */
#define LARDER_EFULL     (-7)  /* no space or quota (ENOSPC, EDQUOT, EFBIG) */
#define LARDER_EPERM     (-8)  /* permission, read-only fs, unsafe mode */
#define LARDER_ENOMEM    (-9)  /* out of memory */
#define LARDER_EIO       (-10) /* any other I/O failure; see larder_errno() */
#define LARDER_ESTALE    (-11) /* a network filesystem kept saying ESTALE */
#define LARDER_ENOTSTORE (-12) /* directory exists but is not a store */
#define LARDER_ECANCELED (-13) /* the caller's cancel flag was set */
#define LARDER_EUSER     (-14) /* a callback failed (see Callbacks above) */
/* clang-format on */

/* A fixed, static string for a code ("entry not found", ...). */
LARDER_API const char *larder_strerror(int rc);

/* ---------------------------------------------------------------------- */
/* Opening a store                                                         */

typedef struct larder larder; /* opaque */

enum larder_fsync {
	LARDER_FSYNC_DEFAULT = 0, /* the store's configured policy */
	LARDER_FSYNC_NONE = 1,	  /* leave it to the kernel */
	LARDER_FSYNC_DATA = 2, /* fdatasync the entry before link (default) */
	LARDER_FSYNC_FULL = 3  /* also fsync the directory after link/unlink */
};

enum larder_log_level {
	LARDER_LOG_ERROR = 1,
	LARDER_LOG_WARN = 2,
	LARDER_LOG_INFO = 3,
	LARDER_LOG_DEBUG = 4
};

/* Called for each log message at or below opts.log_level. `msg` is valid
 * during the call only. May be called from any thread using the handle. */
typedef void (*larder_log_fn)(int level, const char *msg, void *payload);

/* Open flags:
 *  - CREATE: create (init) the store if missing;
 *  - ALLOW_UNSAFE_MODE: accept a store directory writable by others;
 *  - TRUST_LOCAL: skip the payload checksum on reads (the header is still
 *    checked) of files only trusted hands can change (see Memory); a file
 *    of at most 8 KiB is checked anyway, which costs less than finding
 *    out who could change it;
 *  - MAP_NETWORK: map large payloads on network filesystems too (see
 *    Memory);
 *  - VERIFY_ALWAYS: no memo (see Repeat hits): every read reads the
 *    entry's file and verifies its payload checksum. */
/* clang-format off */
#define LARDER_OPEN_CREATE            0x1u
#define LARDER_OPEN_ALLOW_UNSAFE_MODE 0x2u
#define LARDER_OPEN_TRUST_LOCAL       0x4u
#define LARDER_OPEN_MAP_NETWORK       0x8u
#define LARDER_OPEN_VERIFY_ALWAYS     0x10u
/* clang-format on */

/* Version 2 added max_in_memory, version 3 the memo_* fields, version 4
 * shared; the library still takes older structs (without them). */
#define LARDER_OPTS_VERSION 4
typedef struct larder_opts {
	unsigned version; /* LARDER_OPTS_VERSION */
	unsigned flags;	  /* LARDER_OPEN_*; 0 = none */
	/* enum larder_fsync; 0 (LARDER_FSYNC_DEFAULT) = the store's policy */
	int fsync;
	/* With LARDER_OPEN_CREATE, for a new store: its mode, one of 0600
	 * (private), 0640 (group reads), 0644 (everyone reads), 0660 (a
	 * group-shared store: members publish) or 0664 (the same, everyone
	 * reads); anything else is LARDER_EINVAL. 0 = the widest of these
	 * the calling process's umask allows (022: 0644, 027: 0640, 077:
	 * 0600, 007: 0660, 002: 0664). Files take these bits less what
	 * docs/security.md says (published entries are read-only, the
	 * marker and config the owner's), whatever the umask; directories
	 * get x where r, setgid when the group has access, and the top one
	 * is sticky when the group may write. Processes that create one
	 * store at the same moment all open it, and the one whose marker
	 * is linked first decides its mode and fsync policy for all
	 * (docs/format.md, "The marker"): larder_mode() tells. */
	unsigned create_mode;
	/* With LARDER_OPEN_CREATE, for a new store: its fsync policy
	 * (enum larder_fsync). 0 = LARDER_FSYNC_DATA. */
	int create_fsync;
	/* Payloads of at least this many bytes may be mapped instead of
	 * read (on local filesystems; see Memory: up to 8 MiB a handle
	 * maps or reads, whichever it measured cheaper).
	 * 0 = default (64 KiB). */
	size_t mmap_threshold;
	larder_log_fn log; /* NULL = silent */
	void *log_payload; /* passed to log */
	int log_level;	   /* enum larder_log_level; 0 = LARDER_LOG_WARN */
	/* Since version 2: the most bytes larder_get() (and
	 * larder_get_or_fill(), larder_sql() on a hit) allocates to hold one
	 * payload in private memory: the decompressed payload of a zstd
	 * entry, or the copy of an entry file it may not map (another
	 * member's entry, a network filesystem: see Memory). Whoever
	 * publishes chooses those lengths (a few KiB on disk may decompress
	 * to gigabytes; a sparse file claims any size for no disk): a larger
	 * entry fails with LARDER_ENOMEM, before allocating, with a message
	 * that points at larder_get_stream(), which reads it in bounded
	 * memory. 0 = 1 GiB; UINT64_MAX = no limit. */
	uint64_t max_in_memory;
	/* Since version 3: the memo of verified entries (see Repeat hits).
	 * The most entries it holds (0 = 4096) and the most bytes (heap
	 * copies and mappings alike; 0 = 256 MiB; a larger entry is not
	 * memoised). */
	unsigned memo_entries;
	uint64_t memo_bytes;
	/* How often a memoised entry's file is looked at again (its
	 * identity: device, inode, size, mtime, ctime), in milliseconds;
	 * 0 = 1000. A file removed, replaced or written into stops being
	 * served within this. */
	unsigned memo_check_ms;
	/* How often a memoised entry is read and verified from disk again
	 * (payload checksum), in milliseconds; 0 = 60000. */
	unsigned memo_rehash_ms;
	/* Since version 4: the shared tier behind this store (see Tiers):
	 * a store directory (absolute path) or a redis:// URI; "" = none.
	 * NULL = LARDER_SHARED if it is set (empty: none), else the store's
	 * own setting (larder_shared_set). */
	const char *shared;
} larder_opts;
/* clang-format off */
#define LARDER_OPTS_INIT \
	{ LARDER_OPTS_VERSION, 0, 0, 0, 0, 0, NULL, NULL, 0, 0, 0, 0, 0, 0, \
	  NULL }
/* clang-format on */
/* Set *opts to LARDER_OPTS_INIT. */
LARDER_API void larder_opts_init(larder_opts *opts);

/* Open the store at `dir`. opts may be NULL (defaults). Fails with
 * LARDER_ENOTFOUND if there is no store (and no LARDER_OPEN_CREATE), or
 * with LARDER_OPEN_CREATE if dir's parent does not exist (only dir itself
 * is made), LARDER_ENOTSTORE if the directory exists, is not empty and
 * is not a store, LARDER_EVERSION if the store was made by a newer
 * larder. LARDER_EPERM, unless LARDER_OPEN_ALLOW_UNSAFE_MODE is set
 * (docs/security.md): the directory, or ns/, quarantine/ or stats/ in
 * it, is writable by others or a symbolic link; or the marker is not the
 * directory owner's, is writable by group or others, asks for a mode
 * larder never makes or has no valid format line. (A marker that the
 * caller owns and the group may write, as earlier versions made it, is
 * made the owner's instead, and a group-writable top directory that
 * the caller owns is made sticky.) On failure *out is NULL, and
 * larder_errmsg(NULL) gives the message in the calling thread. */
LARDER_API int larder_open(larder **out, const char *dir,
			   const larder_opts *opts);

/* Close a store handle. Entries still held stay valid. NULL is a no-op.
 * It writes the handle's pending counters (below), unless it only looked
 * entries up and was opened less than a minute ago: then it touches
 * nothing in the store and never waits for a counter file's lock. */
LARDER_API void larder_close(larder *db);

/* The last failure of the calling thread on `db`: a message naming the
 * path and the operation ("" if none), and the OS errno (0 if none). The
 * message stays valid until the thread's next call on `db`. With db NULL,
 * they describe the calling thread's last failed larder_open() (or
 * larder_sql_track() with db NULL). Each thread keeps the messages of the
 * last 8 handles it failed on; a failure on a ninth drops the oldest.
 * Ask only after a call failed: larder_open() clears the calling thread's
 * message for the new handle, but a thread that used a handle since
 * closed may still hold its message under the address of a new one. */
LARDER_API const char *larder_errmsg(const larder *db);
LARDER_API int larder_errno(const larder *db);

/* The store's directory as given to larder_open. */
LARDER_API const char *larder_dir(const larder *db);

/* The store's mode, as its marker says: 0600, 0640, 0644, 0660 or 0664
 * (see larder_opts.create_mode). */
LARDER_API unsigned larder_mode(const larder *db);

/* ---------------------------------------------------------------------- */
/* Tiers
 *
 * A store (the near tier, one per host) can have a shared tier behind it
 * (docs/backends.md, "Tiers"): another store directory, on a network
 * filesystem, or a Redis server (redis://[user:password@]host:port/db,
 * redis+sentinel://..., unix:///path). A get tries near, then shared (its
 * payload verified), and copies a shared hit into near; a put or a fill
 * publishes to shared, then near; larder_get_or_fill's leases and waits
 * are in shared, so that a herd across hosts loads once. A version-less
 * lookup takes the version the shared tier's head named, asked again when
 * this handle's answer is older than the store's shared_head_age_ms (1000
 * by default; 0: every time).
 *
 * A shared tier that fails is logged once per outage (the tier, the call,
 * the cause), counted (LARDER_CTR_SHARED_ERRORS, then _SHARED_SKIPPED
 * while it is left alone: 1 s, doubling to 30 s), and the store serves
 * from near alone meanwhile: gets from near, fills with their leases in
 * near (one load per host), puts to near (still 0). The caller keeps its
 * data.
 *
 * The shared tier is chosen at larder_open: larder_opts.shared, else
 * LARDER_SHARED (set and empty: none), else the store's setting. It is
 * opened (for Redis: connected to, AUTH, PING) at its first use, not at
 * larder_open: a near hit never waits on it, and a tier down costs its
 * warning when a call needs it.
 */

/* Set the store's shared tier (written to DIR/config; the store's owner
 * only: else LARDER_EPERM): where as larder_opts.shared takes it; "" or
 * NULL removes it. A where that cannot name a shared tier (a relative
 * path, an unknown scheme, no host, an unknown or bad setting in a
 * Redis URI's query) is LARDER_EINVAL, the message naming it. Handles
 * opened from then on use it. */
LARDER_API int larder_shared_set(larder *db, const char *where);

/* The shared tier this handle uses, any password in it shown as "***";
 * NULL when it has none. Valid while db is. */
LARDER_API const char *larder_shared(const larder *db);

/* Open the handle's shared tier now, if it is not open yet, and tell
 * whether it answers: 0; LARDER_EINVAL if the handle has none; or the
 * tier's error (LARDER_EIO, LARDER_ETIMEOUT, ...), its message naming the
 * tier and the cause, without a warning or a back-off. Never needed
 * before use: larder_open does not contact the shared tier, its first
 * use does (a near hit never does). For tools that check a setting
 * (`larder init --shared`). Thread-safe. */
LARDER_API int larder_shared_try(larder *db);

/* ---------------------------------------------------------------------- */
/* Namespaces                                                              */
/*
 * A namespace is a named collection of entries with its own defaults. Names
 * are 1..64 bytes of [A-Za-z0-9._-], not starting with '.'. Writing to a
 * namespace creates it. "default" is the conventional name.
 */

#define LARDER_NS_MAX 64

/* Set a namespace's default TTL in seconds (0 = entries never expire).
 * Creates the namespace if missing. It applies to this handle's next put;
 * a handle keeps the default for a second (a put reads no file for it),
 * so other handles and processes apply it within a second. */
LARDER_API int larder_ns_set_ttl(larder *db, const char *ns,
				 int64_t ttl_seconds);
/* Read it into *out (from the namespace's config, now); 0 if the
 * namespace has no default or does not exist. */
LARDER_API int larder_ns_get_ttl(int64_t *out, larder *db, const char *ns);

/* Called by larder_ns_foreach() with each namespace's name (valid during
 * the call only). Returns as Callbacks (above) says. */
typedef int (*larder_ns_fn)(const char *ns, void *payload);

/* Call cb for each namespace name; a non-zero return from cb stops the
 * walk and is returned (see Callbacks). Anything in ns/ that is not a
 * namespace's directory is logged as a warning and skipped. */
LARDER_API int larder_ns_foreach(larder *db, larder_ns_fn cb, void *payload);

/* ---------------------------------------------------------------------- */
/* Reading                                                                 */

typedef struct larder_entry larder_entry; /* opaque */

/* Look up (ns, key, version) and verify it. `ver` may be NULL to take the
 * version named by the key's head hint (the newest published version,
 * possibly lagging: by up to memo_check_ms for a head published by
 * another process or handle, see Repeat hits). Returns 0 and an entry, or
 * LARDER_ENOTFOUND for a miss: absent, expired, corrupt (then quarantined;
 * so is anything at the entry's name that is not a regular file), or
 * written by a newer format. Other codes are real failures (permissions,
 * I/O; LARDER_ENOMEM also for a zstd entry larger than
 * larder_opts.max_in_memory). */
LARDER_API int larder_get(larder_entry **out, larder *db, const char *ns,
			  const void *key, size_t klen, const void *ver,
			  size_t vlen);

/* The payload; valid until larder_entry_release(). Never NULL (a zero-size
 * payload gives a valid empty pointer), but for a handle from
 * larder_get_unverified() not yet verified (below). */
LARDER_API const void *larder_entry_data(const larder_entry *e);
LARDER_API size_t larder_entry_size(const larder_entry *e);
/* The version bytes of the entry (useful after a version-less get), their
 * length in *len. */
LARDER_API const void *larder_entry_version(size_t *len, const larder_entry *e);
/* User metadata given at write time (may be empty), its length in *len. */
LARDER_API const void *larder_entry_meta(size_t *len, const larder_entry *e);
/* Wall-clock times in nanoseconds since the epoch; expires 0 = never. */
LARDER_API int64_t larder_entry_created(const larder_entry *e);
LARDER_API int64_t larder_entry_expires(const larder_entry *e);
/* Non-zero if the payload is mapped rather than copied. */
LARDER_API int larder_entry_is_mapped(const larder_entry *e);

/* Release an entry (unmaps or frees its data). NULL is a no-op. */
LARDER_API void larder_entry_release(larder_entry *e);

/* Look up (ns, key, version) as larder_get() does, but leave the payload
 * unverified until larder_entry_verify(): for a caller that must hold an
 * entry long before it reads it, or may never read it (a filesystem that
 * answers a stat from the header and a read from the payload).
 *
 * What it does: opens the entry file (by name; with ver NULL, the version
 * the key's head names) and reads its header only, never the payload of
 * a file larger than one read (16 KiB). It checks what larder_get()
 * checks of the header: a damaged or misplaced header, an expired entry
 * or one of a newer format is a miss (LARDER_ENOTFOUND; damage counted
 * and quarantined). It counts a request and a hit or a miss, as
 * larder_get() does, and takes nothing from the memo (Repeat hits) nor
 * gives it anything.
 *
 * Before larder_entry_verify() returned 0, the handle holds the entry
 * file open (one descriptor) and:
 *  - larder_entry_data() is NULL: no byte of the payload is handed out;
 *  - larder_entry_size(), _version(), _meta(), _created() and _expires()
 *    are the header's, which is checked against its own checksum but
 *    not against the payload: what the payload turns out to be is only
 *    known at the verify;
 *  - larder_entry_is_mapped() is 0.
 * The entry may be removed, evicted or quarantined at its name
 * meanwhile: the handle reads the file it opened.
 *
 * A store read through another backend (a shared tier, Redis) reads an
 * entry whole: this is then larder_get(), and the handle comes back
 * verified (larder_entry_verify() returns 0 at once). Release it with
 * larder_entry_release(), verified or not. */
LARDER_API int larder_get_unverified(larder_entry **out, larder *db,
				     const char *ns, const void *key,
				     size_t klen, const void *ver, size_t vlen);

/* Verify the payload of a handle from larder_get_unverified(), from the
 * file it holds open, and load it as larder_get() would (mapped when only
 * trusted hands can change it and it is large, else read; a zstd payload
 * decompressed; see Memory). The payload checksum is always checked, even
 * with LARDER_OPEN_TRUST_LOCAL. Returns:
 *  - 0: from here on the handle is what larder_get() returns (data
 *    valid until larder_entry_release(), the same guarantees), and it
 *    holds no descriptor. An entry that expired since its lookup still
 *    verifies. A handle already verified (or from larder_get()) returns
 *    0 at once;
 *  - LARDER_ECORRUPT: the payload is damaged (or is not what its header
 *    says): it is counted (LARDER_CTR_CHECKSUM_FAIL) and moved to
 *    quarantine/ if its name still holds that very file (quarantined,
 *    its head with it), and every later call on this handle fails the
 *    same way; larder_entry_data() stays NULL. Nothing of it was handed
 *    out;
 *  - LARDER_ENOMEM (a copy or a decompressed payload larger than
 *    larder_opts.max_in_memory, or no memory), LARDER_EIO or another
 *    failure to read: the handle is left unverified, as it was, and may
 *    be verified again.
 * As every call on an entry handle, from one thread at a time: callers
 * that share a handle verify it under their own lock. */
LARDER_API int larder_entry_verify(larder_entry *e);

/* Receives a payload in order, in pieces of any size (never empty), from
 * larder_get_stream(). `buf` is valid during the call only. Return 0 to go
 * on; anything else stops the read: a positive value is returned as is,
 * a negative one as Callbacks (above) says (LARDER_EUSER unless it is a
 * larder call's failure). */
typedef int (*larder_sink_fn)(const void *buf, size_t len, void *payload);

/* Look up (ns, key, version) as larder_get() does and hand the payload to
 * `sink`, with bounded memory whatever its size (about 1 MiB, plus for a
 * zstd entry what its frame's window needs: at most 128 MiB, zstd's own
 * limit, a few MiB as larder writes them). Nothing reaches the sink before
 * the entry was verified as a whole:
 *  - a large entry only trusted hands can change (see Memory) is mapped,
 *    verified, then handed out from the mapping;
 *  - any other large entry is read twice in chunks: once to verify it,
 *    once to hand it out, hashed again on the way; a difference at the
 *    end (its file was changed meanwhile) is LARDER_ECORRUPT, the entry
 *    quarantined and counted (checksum_fail), never success;
 *  - a zstd entry's stored bytes are verified first, then decompressed as
 *    they are handed out; the frame must end at the end of the payload,
 *    at exactly the raw length.
 * Counts one request, a hit if handing out began, else a miss.
 *
 * Returns 0 when the sink received exactly the entry's payload, in order
 * (a zero-size payload never calls it). Otherwise, what the sink may have
 * received:
 *  - LARDER_ENOTFOUND (a miss, as for larder_get(), including an entry
 *    found damaged before its first byte went out): nothing; the sink was
 *    never called;
 *  - the sink's own positive return, or LARDER_EUSER (or the code it
 *    passed on) for a negative one: the payload's first bytes, up to and
 *    including the piece it stopped at;
 *  - LARDER_ECORRUPT (the file changed while it was handed out, or a zstd
 *    frame broke off), or any other code (LARDER_EIO, LARDER_ENOMEM, ...):
 *    some bytes that must be thrown away: they may not be a prefix of any
 *    published entry.
 * The sink runs in the calling thread and may call functions on db, but
 * the calling thread's larder_errmsg() then describes those calls. */
LARDER_API int larder_get_stream(larder *db, const char *ns, const void *key,
				 size_t klen, const void *ver, size_t vlen,
				 larder_sink_fn sink, void *payload);

/* ---------------------------------------------------------------------- */
/* Writing                                                                 */

typedef struct larder_writer larder_writer; /* opaque */

/* Put flags: ZSTD compresses the payload with zstd; NO_HEAD does not
 * move the key's head hint to this version. */
/* clang-format off */
#define LARDER_PUT_ZSTD    0x1u
#define LARDER_PUT_NO_HEAD 0x2u
/* clang-format on */

/* ttl value meaning "never expires", overriding a namespace default */
#define LARDER_TTL_NEVER (-1)

#define LARDER_PUT_OPTS_VERSION 1
typedef struct larder_put_opts {
	unsigned version; /* LARDER_PUT_OPTS_VERSION */
	unsigned flags;	  /* LARDER_PUT_*; 0 = none */
	/* seconds; 0 = the namespace's default; LARDER_TTL_NEVER = never */
	int64_t ttl_seconds;
	/* user metadata stored in the header (copied); NULL = none */
	const void *meta;
	size_t meta_len; /* at most 1 MiB */
	int zstd_level;	 /* 0 = 1 */
} larder_put_opts;
/* clang-format off */
#define LARDER_PUT_OPTS_INIT \
	{ LARDER_PUT_OPTS_VERSION, 0, 0, NULL, 0, 0 }
/* clang-format on */
/* Set *opts to LARDER_PUT_OPTS_INIT. */
LARDER_API void larder_put_opts_init(larder_put_opts *opts);

/* Begin writing the entry (ns, key, version). The payload is streamed into
 * a temp file in the entry's final directory and hashed as it goes, so it
 * never has to sit in memory. opts may be NULL. Key and version are copied;
 * each is at most 64 MiB. */
LARDER_API int larder_writer_begin(larder_writer **out, larder *db,
				   const char *ns, const void *key, size_t klen,
				   const void *ver, size_t vlen,
				   const larder_put_opts *opts);

/* Append payload bytes. On failure the writer is still valid and must be
 * aborted. */
LARDER_API int larder_writer_write(larder_writer *w, const void *buf,
				   size_t len);

/* Publish the entry atomically and free the writer (whatever the result).
 * Returns 0 if this call published it, LARDER_EXISTS if an identical
 * (key, version) entry was already published by someone else (theirs is
 * kept; same bytes by the contract that a version names its data), or a
 * negative code; on failure nothing is left behind. In both success cases
 * the key's head hint is moved to this version (unless LARDER_PUT_NO_HEAD),
 * so re-putting an older version makes it the head again. With the `full`
 * fsync policy, a directory fsync that fails after the entry became
 * visible is logged and counted (write_failures), not returned: the entry
 * is correct, only its survival of a crash is in doubt. */
LARDER_API int larder_writer_commit(larder_writer *w);

/* Drop a writer and its temp file. NULL is a no-op. */
LARDER_API void larder_writer_abort(larder_writer *w);

/* One-shot put of a buffer: begin + write + commit. */
LARDER_API int larder_put(larder *db, const char *ns, const void *key,
			  size_t klen, const void *ver, size_t vlen,
			  const void *data, size_t len,
			  const larder_put_opts *opts);

/* ---------------------------------------------------------------------- */
/* Many keys at once                                                       */
/*
 * larder_get_many() and larder_put_many() take n keys of one namespace
 * in parallel arrays (key i is keys[i], klens[i] bytes; its version
 * vers[i], vlens[i] bytes) and give each key its own result in rc[i]:
 * exactly what larder_get() or larder_put() would have returned for it,
 * so a miss, a corrupt entry (a miss, as for larder_get()) or an error
 * of one key does not fail the others. larder_errmsg() describes the
 * last key that failed. Counters count each key as its single call
 * would.
 *
 * Where a request costs a round trip (Redis, docs/backends.md) the batch
 * is pipelined: larder_get_many sends every entry's manifest request
 * before it reads the first reply, then every chunk of every entry
 * found, so n small entries cost two round trips, not n (and one more
 * for the heads of version-less keys, all read at once on Redis alone;
 * behind a near store, one by one, each remembered as larder_get()
 * remembers it). larder_put_many sends every small entry's commit
 * before it reads the first reply: one round trip for n. On a directory
 * each key is read, or put, as larder_get() or larder_put() does it.
 *
 * Both return 0 once every key has its result (each in rc[i]), or a
 * negative code for the batch as a whole, with no key tried:
 * LARDER_EINVAL for a bad namespace or a required array missing,
 * LARDER_ENOMEM.
 */

/* Look up n keys of ns: out[i] is key i's entry (release each with
 * larder_entry_release()) when rc[i] is 0, else NULL. vers may be NULL
 * (every key's version from its head hint), and so may any vers[i]. */
LARDER_API int larder_get_many(larder *db, const char *ns, size_t n,
			       const void *const *keys, const size_t *klens,
			       const void *const *vers, const size_t *vlens,
			       larder_entry **out, int *rc);

/* Put n entries of ns: key i's payload is data[i], lens[i] bytes;
 * rc[i] is larder_put()'s result for it (0, LARDER_EXISTS, or an
 * error). opts (may be NULL) applies to every entry. Each is published
 * as larder_put() publishes it; on Redis the commits go together (see
 * above). */
LARDER_API int larder_put_many(larder *db, const char *ns, size_t n,
			       const void *const *keys, const size_t *klens,
			       const void *const *vers, const size_t *vlens,
			       const void *const *data, const size_t *lens,
			       const larder_put_opts *opts, int *rc);

/* ---------------------------------------------------------------------- */
/* Removing                                                                */

/* Remove the entry (ns, key, version). With ver NULL: remove the entry the
 * head hint names, and the head hint (older versions stay reachable only by
 * their exact version until evicted). Readers holding the entry keep their
 * data. LARDER_ENOTFOUND if there was nothing to remove. */
LARDER_API int larder_remove(larder *db, const char *ns, const void *key,
			     size_t klen, const void *ver, size_t vlen);

/* ---------------------------------------------------------------------- */
/* Single-flight fills across processes and hosts (docs/leases.md) */
/*
 * larder_get_or_fill() returns the entry for (ns, key, version). When it is
 * missing, exactly one caller among all the processes and hosts sharing the
 * store runs its loader: the one that holds the key's lease, a small file
 * kept alive by a heartbeat thread. The others wait, bounded, for the entry
 * to appear (inotify on local filesystems, jittered polling on network
 * ones), and take over when the filler dies (same host: at once; other
 * hosts: when its lease has shown no heartbeat for a full lease period, as
 * timed by the waiter's own monotonic clock — no clocks are compared across
 * machines). Leases only save work: if every lease were lost, results would
 * still be correct, because entries are immutable and checked.
 *
 * Calling sequence
 *
 *    static int load(larder_fill *f, void *payload) {
 *        while ((n = produce(buf, sizeof buf)) > 0)
 *            if ((rc = larder_fill_write(f, buf, n)) != 0) return rc;
 *        return 0;
 *    }
 *    int outcome;
 *    rc = larder_get_or_fill(&e, &outcome, db, "default", key, klen,
 *                            ver, vlen, NULL, load, ctx, NULL);
 *
 * The loader's data always reaches the caller: if the cache cannot keep it
 * (disk full, read-only, permission), the entry returned holds the loaded
 * bytes in memory, outcome is LARDER_FILLED_UNCACHED, the failure is
 * counted (LARDER_CTR_UNCACHED) and described by larder_errmsg().
 */

typedef struct larder_fill larder_fill; /* a lookup or load in progress */

/* Computes the source's current version and hands it over with
 * larder_fill_set_version(). Return 0, or non-zero to fail the call: the
 * failure of a larder call passed on, anything else LARDER_EUSER (see
 * Callbacks above). */
typedef int (*larder_version_fn)(larder_fill *fill, void *payload);

/* Loads the data, streaming it with larder_fill_write(). Return as for
 * larder_version_fn; on failure nothing is published. A loader that reads
 * the version in the same snapshot as the data (one SQL transaction, say)
 * calls larder_fill_set_version() with it: the data is then published under
 * that version and the version is not computed again after the load. */
typedef int (*larder_loader_fn)(larder_fill *fill, void *payload);

LARDER_API int larder_fill_set_version(larder_fill *fill, const void *ver,
				       size_t vlen);
LARDER_API int larder_fill_write(larder_fill *fill, const void *buf,
				 size_t len);
/* The version being looked up or loaded (valid during the callback), its
 * length in *vlen. */
LARDER_API const void *larder_fill_version(size_t *vlen,
					   const larder_fill *fill);

/* What larder_get_or_fill did */
enum larder_outcome {
	LARDER_HIT = 1,	   /* the entry was there */
	LARDER_FILLED = 2, /* this call ran the loader and published */
	LARDER_WAITED = 3, /* another process filled it while we waited */
	LARDER_STALE = 4,  /* allow-stale: a previous version, while another
			      process fills the current one */
	LARDER_FILLED_UNCACHED = 5 /* loaded here, but not cached */
};

/* Fill flags: ALLOW_STALE returns the previous version while another
 * process fills the current one. */
#define LARDER_FILL_ALLOW_STALE 0x1u

/*
 * Waiting for another filler
 *
 * When another process or host holds the key's lease, the call waits for
 * it. A caller that wants to show this (a progress line, a log) passes
 * opts.on_wait: it is called
 *  - once with LARDER_WAIT_START when the call starts waiting (after a
 *    first look found the lease held and the entry still missing);
 *  - with LARDER_WAIT_TICK about every 250 ms while it waits (also when
 *    nothing changed: the elapsed time moves);
 *  - once with LARDER_WAIT_END when the wait is over, before the call
 *    loads (if it does) or returns: info->end says how it ended.
 * A call that finds the entry, takes the lease at once or returns a stale
 * version (LARDER_FILL_ALLOW_STALE) never calls it. A call that waits
 * calls START and END exactly once each, in that order, TICKs between.
 *
 * It runs in the calling thread, inside larder_get_or_fill() (or
 * larder_sql()). It may call larder_get(), larder_counter() and the
 * like on the handle, but not larder_get_or_fill() or larder_sql(), and
 * should return quickly: the wait does not look at the lease or the entry
 * while it runs. `info` and its strings are valid during the call
 * only. Fields may be added at the end of larder_wait_info in later
 * versions (the library owns it).
 */
enum larder_wait_event {
	LARDER_WAIT_START = 1, /* the call starts waiting */
	LARDER_WAIT_TICK = 2,  /* still waiting (about every 250 ms) */
	LARDER_WAIT_END = 3    /* the wait is over: see info->end */
};

/* How a wait ended (larder_wait_info.end, with LARDER_WAIT_END). */
enum larder_wait_end {
	LARDER_WAIT_FILLED = 1,	    /* the entry appeared: returned */
	LARDER_WAIT_TAKEN_OVER = 2, /* the lease was released or broken
				       without the entry: this call took it
				       and loads */
	LARDER_WAIT_TIMED_OUT = 3,  /* max_wait passed: this call loads
				       without the lease */
	LARDER_WAIT_FAILED = 4	    /* an error ended it (version_fn failed,
				       no lease could be taken: loads without) */
};

/* Filled by the library, which sets version to the one it filled (fields
 * are added at the end: read a later one only if version says it is
 * there). */
#define LARDER_WAIT_INFO_VERSION 1
typedef struct larder_wait_info {
	unsigned version;   /* LARDER_WAIT_INFO_VERSION */
	int event;	    /* enum larder_wait_event */
	int end;	    /* with LARDER_WAIT_END: enum larder_wait_end;
			       else 0 */
	uint64_t waited_ms; /* since the wait started (monotonic clock) */
	/* The lease holder as its lease file says (the latest one seen: a
	 * holder that is taken over changes). host "" and pid 0 until a
	 * lease has been read. pid is in the holder's own PID namespace. */
	const char *holder_host;
	long holder_pid;
	/* 1 while the holder looks alive: its process exists (same host) or
	 * its heartbeat moved within the last lease period by our clock; 0
	 * when it looks gone (its lease is about to be broken). */
	int holder_alive;
	uint64_t holder_silent_ms; /* since its lease last changed */
	unsigned breaks;	   /* stale leases this call broke meanwhile */
} larder_wait_info;
/* clang-format off */
#define LARDER_WAIT_INFO_INIT \
	{ LARDER_WAIT_INFO_VERSION, 0, 0, 0, NULL, 0, 0, 0, 0 }
/* clang-format on */
/* Set *info to LARDER_WAIT_INFO_INIT (for tests and bindings that make
 * one; the library fills its own). */
LARDER_API void larder_wait_info_init(larder_wait_info *info);

typedef void (*larder_wait_fn)(const larder_wait_info *info, void *payload);

/* The shortest lease larder_get_or_fill() accepts (LARDER_EINVAL below
 * it): a holder beats every lease/4, and a shorter lease cannot be kept
 * alive through ordinary delays (a slow fdatasync, a busy machine), so
 * waiters would break live leases and load again (docs/leases.md). */
#define LARDER_LEASE_MIN_SECONDS 1.0
/* The longest: a waiter takes a lease record that claims more for
 * garbage (docs/leases.md), so a longer one would be broken while its
 * holder lives. */
#define LARDER_LEASE_MAX_SECONDS 3600.0

/* Version 2 added on_wait and on_wait_payload, version 3 cancel; the
 * library still takes version 1 and 2 structs (without them). */
#define LARDER_FILL_OPTS_VERSION 3
typedef struct larder_fill_opts {
	unsigned version; /* LARDER_FILL_OPTS_VERSION */
	unsigned flags;	  /* LARDER_FILL_*; 0 = none */
	/* How long a lease lives without a heartbeat before a waiter on
	 * another host may break it. 0 = 30 s (network filesystems); else
	 * from LARDER_LEASE_MIN_SECONDS to LARDER_LEASE_MAX_SECONDS. */
	double lease_seconds;
	double heartbeat_seconds; /* 0 = lease / 4 */
	/* How long to wait for another filler before loading anyway (never
	 * a deadlock). 0 = 10 lease periods; else at least 0.001 (waits are
	 * timed in milliseconds). */
	double max_wait_seconds;
	/* Loads retried when the source changed during a load. 0 = 3
	 * (at least one retry: a load overtaken by a change must be able
	 * to run again, or the call could never publish). */
	unsigned max_retries;
	/* TTL, metadata, zstd of the entry; NULL = LARDER_PUT_OPTS_INIT */
	const larder_put_opts *put;
	/* Since version 2: told about waits for another filler (see
	 * "Waiting for another filler" above). NULL = not told. */
	larder_wait_fn on_wait;
	void *on_wait_payload; /* passed to on_wait */
	/* Since version 3: NULL, or a flag the caller sets to stop the call
	 * (a signal handler may set it; the library only reads it). It is
	 * looked at before the loader runs, at each larder_fill_write(),
	 * before publishing, and while waiting for another filler (at once
	 * when a signal interrupts the wait, else within half a second).
	 * Once it is non-zero the call publishes nothing, removes its temp
	 * file, releases its lease and returns LARDER_ECANCELED. A loader
	 * busy in its source (a query yet to give its first row) is not
	 * interrupted: the call stops at its next write. */
	const volatile sig_atomic_t *cancel;
} larder_fill_opts;
/* clang-format off */
#define LARDER_FILL_OPTS_INIT \
	{ LARDER_FILL_OPTS_VERSION, 0, 0, 0, 0, 0, NULL, NULL, NULL, NULL }
/* clang-format on */
/* Set *opts to LARDER_FILL_OPTS_INIT. */
LARDER_API void larder_fill_opts_init(larder_fill_opts *opts);

/* Get (ns, key, ver), filling it if missing. ver NULL: the version comes
 * from version_fn (called first, and again after a load to check that the
 * source did not change meanwhile). outcome may be NULL. Returns 0 and an
 * entry (release it), or a negative code: the loader's or version_fn's
 * failure (LARDER_EUSER, or the larder call's code it passed on: see
 * Callbacks above), LARDER_ETIMEOUT never (after max_wait the caller loads
 * itself), LARDER_EBUSY if the source changed during every one of the retries.
 * A failure with *outcome LARDER_FILLED means the load was stored but
 * could not be read back (no address space to map it, say): the data is
 * cached, and larder_errmsg() says so. */
LARDER_API int larder_get_or_fill(larder_entry **out, int *outcome, larder *db,
				  const char *ns, const void *key, size_t klen,
				  const void *ver, size_t vlen,
				  larder_version_fn version_fn,
				  larder_loader_fn loader, void *payload,
				  const larder_fill_opts *opts);

/* ---------------------------------------------------------------------- */
/* File versions (docs/versions.md)                            */
/*
 * The version of a set of files and directory trees, for use as the
 * version of an entry computed from them (`larder run --input`, a
 * version_fn). It is made from the files' *contents*, so hosts that see
 * the same bytes share entries even where device and inode numbers
 * differ (NFS clients). Reading every byte each time would defeat the
 * cache, so the content hash of each file is remembered in the store,
 * filed under the file's fingerprint (device, inode, size, mtime and
 * ctime in ns, birth time and mount where the kernel reports them) plus
 * the host's boot id and the file's path: while the fingerprint stays the
 * same, the version costs one stat and one small lookup per file and
 * reads no byte of it. Files under 64 KiB are read instead (that costs
 * what the lookup does). A directory tree that did not change costs one
 * stat per entry, its directory listings and one lookup.
 *
 * Racy files (whose mtime or ctime is within 2 s of "now", on the local
 * clock or on the store filesystem's own clock, like git's racy index
 * entries) are hashed every time and not remembered: a second change in
 * the same clock tick could keep the fingerprint. They are read twice,
 * and the version is given only when both reads agree and the
 * fingerprint held throughout, so that a version is always the content
 * of one state the file was in, never a read overtaken by a writer.
 * A file that changes under every read is retried a few times, briefly,
 * then LARDER_EBUSY.
 *
 * A file counts by its content and its owner-execute bit (as in git);
 * other mode bits, times and names do not. A directory counts as the
 * tree under it: every entry's path relative to the directory, its type,
 * the content and execute bit of regular files, the target of symbolic
 * links (not followed inside a tree; a path given directly is followed).
 * Sockets, FIFOs and devices count by type and name only. The store's
 * own directory, if inside the tree, is left out. Inputs combine in the
 * order given. The result is printable text: "files/1 " and 32 lowercase
 * hex digits.
 *
 * The remembered hashes live in the store's internal namespace ".files"
 * (ordinary, checked entries, each a few hundred bytes; they may be
 * evicted at any time at the cost of hashing again). Counters:
 * LARDER_CTR_FILES_HASHED (reads of a file's content),
 * LARDER_CTR_FILES_HASHED_BYTES, LARDER_CTR_FILES_REMEMBERED (file hashes
 * taken from the store, counting each file of a remembered tree).
 */

#define LARDER_FILES_VERSION_LEN 40 /* strlen("files/1 ") + 32 */

/* files_version flags: NO_REMEMBER hashes every byte and neither reads
 * nor writes remembered hashes. */
#define LARDER_FILES_NO_REMEMBER 0x1u

/* Compute the version of paths[0..n) into out (NUL-terminated; "" on
 * failure). Fails with LARDER_ENOTFOUND if an input does not exist,
 * LARDER_EPERM if it (or anything in a tree) cannot be read,
 * LARDER_EINVAL if n is 0, a path is empty, an input is neither a
 * regular file nor a directory (nor a symlink to one) or a tree is
 * deeper than 256 directories, LARDER_EIO on a read error, LARDER_EBUSY
 * if a file kept changing while it was read, LARDER_ESTALE if a network
 * filesystem kept saying ESTALE (a name another client renamed over) for
 * 3 s, the whole version being started over meanwhile (counted in
 * LARDER_CTR_ESTALE_RETRIES); larder_errmsg() names the path. A failure to
 * remember a hash (store full, read-only) is not an error: it is counted
 * (LARDER_CTR_WRITE_FAILURES) and logged once per handle. Thread-safe on one
 * handle. */
LARDER_API int larder_files_version(char out[LARDER_FILES_VERSION_LEN + 1],
				    larder *db, const char *const *paths,
				    size_t n, unsigned flags);

/* ---------------------------------------------------------------------- */
/* SQL sources (docs/sql.md)                                    */
/*
 * larder_sql() caches the result of a query, filled once across
 * processes and hosts with larder_get_or_fill(). The database:
 *   - SQLite: a path, or "sqlite:PATH" (opened read-only, never created);
 *   - PostgreSQL: "postgresql://..." or "postgres://..." URIs, or a
 *     libpq "key=value ..." connection string.
 * A path that exists is SQLite even with '=' in it; otherwise a string
 * that libpq parses as a connection string is PostgreSQL
 * (docs/sql.md#the-database).
 *
 * The key is the query normalized (comments dropped, whitespace runs
 * collapsed and unquoted words lowercased, outside literals and quoted
 * names) + the parameters + the database's identity (SQLite: the file's
 * canonical path; PostgreSQL: the cluster's system identifier, the
 * database and the user, so a password never reaches the store) + the
 * output format and flags + the version query or table. The normalized
 * text is also the text that runs, so that queries sharing a key give the
 * same bytes (SQLite names result columns after the text as written).
 *
 * The version is computed by one of:
 *   - opts.table: the change counter that larder_sql_track() keeps for a
 *     table with triggers (right under INSERT, UPDATE, DELETE and, on
 *     PostgreSQL, TRUNCATE; on SQLite it also carries the schema version,
 *     which ALTER TABLE moves);
 *   - opts.version_query: any query; its whole result is the version
 *     (e.g. "SELECT COUNT(*), MAX(updated_at) FROM t");
 *   - neither: the version is empty and the entry lives for its TTL
 *     (then a TTL is required: opts.fill->put->ttl_seconds or the
 *     namespace's default).
 * The loader runs the version query and the data query in one read
 * snapshot (SQLite: one read transaction; PostgreSQL: REPEATABLE READ
 * READ ONLY), so the data is always published under the version it
 * matches. Rows are streamed into the entry (PostgreSQL single-row mode):
 * a result never sits whole in memory.
 *
 * Bad SQL, an unreachable database or failed authentication: a negative
 * code (LARDER_EINVAL for SQL the database rejects, LARDER_EIO for
 * connection failures, LARDER_EPERM for authentication, LARDER_ENOTFOUND
 * for a missing SQLite file or a table that is not tracked), the
 * database's own message in larder_errmsg(), and nothing cached.
 *
 * Calls may run in many threads at once on one store handle; no two share
 * a database connection at the same time. PostgreSQL connections are kept
 * by the handle for its later calls (a few idle ones, per connection
 * string, closed by larder_close()): only a sound, idle one goes back,
 * after DISCARD ALL (nothing a query set in its session reaches the next
 * call), and one that died meanwhile is replaced once, unseen by the
 * call. A forked child never uses nor closes its parent's connections;
 * it makes its own. SQLite files are opened and closed by each call.
 */

enum larder_sql_format {
	LARDER_SQL_CSV = 0,  /* RFC 4180: CRLF, quoted when needed; NULL is an
				empty field, an empty string is "" */
	LARDER_SQL_TSV = 1,  /* PostgreSQL text format: NULL is \N; \\, \t,
				\n, \r escaped */
	LARDER_SQL_JSONL = 2 /* one JSON object per row; NULL is null */
};

/* sql flags */
#define LARDER_SQL_NO_HEADER 0x1u /* CSV/TSV: no line of column names */

/* Told how a load is going: rows formatted and bytes written into the
 * entry so far. Called in the calling thread, from inside larder_sql(),
 * each time a chunk of the result (about 64 KiB) has been written to the
 * entry, and once when the rows are all written; only by a call that
 * loads (not on a hit, nor while waiting for another filler: see
 * larder_fill_opts.on_wait). A load that is retried starts again from 0.
 * It must not call larder_sql() or larder_get_or_fill(). */
typedef void (*larder_sql_progress_fn)(uint64_t rows, uint64_t bytes,
				       void *payload);

/* Version 2 added on_progress and on_progress_payload; the library still
 * takes version 1 structs (without them). */
#define LARDER_SQL_OPTS_VERSION 2
typedef struct larder_sql_opts {
	unsigned version; /* LARDER_SQL_OPTS_VERSION */
	unsigned flags;	  /* LARDER_SQL_*; 0 = none */
	int format;	  /* enum larder_sql_format; 0 = LARDER_SQL_CSV */
	/* Values bound to the query's parameters (?, ?NNN, :name or $N) in
	 * order, as text; a NULL pointer binds SQL NULL. The version query
	 * gets them too if it has parameters. */
	const char *const *params;
	size_t nparams;
	/* At most one of these two; NULL = none (see above). */
	const char *version_query;
	const char *table;
	/* lease, waits (fill->on_wait), TTL (fill->put); NULL =
	 * LARDER_FILL_OPTS_INIT */
	const larder_fill_opts *fill;
	/* Since version 2: progress of a load. NULL = not told. */
	larder_sql_progress_fn on_progress;
	void *on_progress_payload; /* passed to on_progress */
} larder_sql_opts;
/* clang-format off */
#define LARDER_SQL_OPTS_INIT \
	{ LARDER_SQL_OPTS_VERSION, 0, 0, NULL, 0, NULL, NULL, NULL, NULL, NULL }
/* clang-format on */
/* Set *opts to LARDER_SQL_OPTS_INIT. */
LARDER_API void larder_sql_opts_init(larder_sql_opts *opts);

/* Get the result of `query` on database `dburi` as an entry (the payload
 * is the formatted rows), loading it if missing or stale. outcome as for
 * larder_get_or_fill (may be NULL). opts may be NULL (CSV, no version:
 * then the namespace must have a default TTL). */
LARDER_API int larder_sql(larder_entry **out, int *outcome, larder *db,
			  const char *ns, const char *dburi, const char *query,
			  const larder_sql_opts *opts);

/* Install the change counter for `table` in database `dburi` (a table
 * larder_changes and triggers named larder_track_<table>_*), so that
 * larder_sql() with opts.table = table gets a version that changes with
 * every committed change to the table. Needs write access to the
 * database. Idempotent: a second call changes nothing (a counter missing
 * its triggers or row is made again, under a new token). On SQLite the
 * name is one table of the main schema, ASCII case ignored (a dot is part
 * of the name). db is used for the error message only and may be NULL
 * (then larder_errmsg(NULL) has it). */
LARDER_API int larder_sql_track(larder *db, const char *dburi,
				const char *table);

/* Remove what larder_sql_track() installed for `table` (the triggers and
 * the counter's row; the table larder_changes stays). Nothing to remove
 * is not an error. */
LARDER_API int larder_sql_untrack(larder *db, const char *dburi,
				  const char *table);

/* ---------------------------------------------------------------------- */
/* Walking and verifying the store                                         */

enum larder_entry_state {
	LARDER_STATE_OK = 0,
	LARDER_STATE_EXPIRED = 1,
	LARDER_STATE_CORRUPT = 2,  /* bad header, checksum or framing */
	LARDER_STATE_NEWER = 3,	   /* written by a newer format */
	LARDER_STATE_MISPLACED = 4 /* header does not match the file name */
};

/* Filled by the library, which sets version to the one it filled (fields
 * are added at the end: read a later one only if version says it is
 * there). */
/* Version 2 added checksum. */
#define LARDER_ENTRY_INFO_VERSION 2
typedef struct larder_entry_info {
	unsigned version; /* LARDER_ENTRY_INFO_VERSION */
	const char *ns;	  /* namespace */
	const char *path; /* file path */
	/* Header fields: key is NULL when the header itself is unreadable;
	 * for a payload checksum failure they are shown, but unverified. */
	const void *key;
	size_t klen;
	const void *ver;
	size_t vlen;
	const void *meta;
	size_t meta_len;
	uint64_t size;	      /* payload bytes (uncompressed) */
	uint64_t stored_size; /* payload bytes on disk */
	uint64_t file_size;   /* whole file */
	int64_t created;      /* ns since epoch */
	int64_t expires;      /* ns since epoch, 0 = never */
	int compressed;	      /* zstd */
	int state;	      /* enum larder_entry_state */
	const char *problem;  /* what is wrong, for non-OK states */
	int quarantined;      /* LARDER_WALK_REPAIR moved it to quarantine/ */
	/* Since version 2: the header's payload checksum, XXH3-128 of the
	 * stored payload bytes in canonical (big-endian) order
	 * (docs/format.md); all zero when the header is unreadable. Like
	 * the other header fields, verified only with LARDER_WALK_VERIFY
	 * (or by a read). */
	uint8_t checksum[16];
} larder_entry_info;
/* clang-format off */
#define LARDER_ENTRY_INFO_INIT \
	{ LARDER_ENTRY_INFO_VERSION, NULL, NULL, NULL, 0, NULL, 0, NULL, 0, \
	  0, 0, 0, 0, 0, 0, 0, NULL, 0, {0} }
/* clang-format on */
/* Set *info to LARDER_ENTRY_INFO_INIT (for tests and bindings that make
 * one; the library fills its own). */
LARDER_API void larder_entry_info_init(larder_entry_info *info);

/* Called by larder_walk() and larder_inspect() with each entry; `info`
 * is valid during the call only. Returns as Callbacks (above) says. */
typedef int (*larder_walk_fn)(const larder_entry_info *info, void *payload);

/* Walk flags: VERIFY hashes every payload (else the header only); REPAIR
 * moves corrupt and misplaced entries to quarantine/. SHARED walks (or
 * inspects) the store's shared tier instead of the store's own directory
 * (Tiers): each entry is read whole through the tier's backend, and
 * REPAIR removes a damaged one there (a shared directory moves it to its
 * own quarantine/; Redis deletes it if it is still the entry read); the
 * info's path is where the backend keeps it ("DIR/ns/..." or
 * "redis://host:port/db PREFIX{HASH}:m"). LARDER_EINVAL when the store
 * has no shared tier; the tier's error (LARDER_EIO, LARDER_ETIMEOUT, ...)
 * when it cannot be reached. Without SHARED, the store's own (near)
 * directory, as always. */
/* clang-format off */
#define LARDER_WALK_VERIFY 0x1u
#define LARDER_WALK_REPAIR 0x2u
#define LARDER_WALK_SHARED 0x4u
/* clang-format on */

/* Call cb for each entry of namespace `ns` (NULL = every namespace). The
 * info is valid during the call only. A non-zero return from cb stops the
 * walk and is returned (see Callbacks). What larder did not make where it keeps
 * its directories (a stray file, a symlink) or a directory every user may write
 * is logged as a warning and skipped, as in every walk (the cleaning, the
 * sweep): it never stops the walk. */
LARDER_API int larder_walk(larder *db, const char *ns, unsigned flags,
			   larder_walk_fn cb, void *payload);

/* The number of slices larder_walk_slice() cuts a namespace into. */
#define LARDER_WALK_SLICES 256

/* As larder_walk() for one namespace, but only the entries of slices
 * [lo, hi) of it, 0 <= lo < hi <= LARDER_WALK_SLICES: an entry's slice is
 * the first byte of its file's name hash (docs/format.md, "Store
 * layout"), so each entry is in exactly one slice, whatever its key and
 * version, and a slice holds about 1/256 of the namespace. A long
 * listing can so be taken a slice at a time, with bounded work per
 * step, and resumed at the next slice (`larder mount` lists a directory
 * that way). Entries published or removed meanwhile are seen or not
 * depending on their slice. The order within a slice is the
 * filesystem's. LARDER_EINVAL for a NULL ns or slices out of range. */
LARDER_API int larder_walk_slice(larder *db, const char *ns, int lo, int hi,
				 unsigned flags, larder_walk_fn cb,
				 void *payload);

/* Describe one entry without trusting it: calls cb once with what its
 * header says and its state (LARDER_WALK_VERIFY also hashes the payload).
 * Unlike larder_get(), a corrupt or expired entry is reported, not hidden,
 * and nothing is moved to quarantine/ (unless LARDER_WALK_REPAIR). ver NULL
 * means the version named by the head hint. LARDER_ENOTFOUND if there is no
 * such file. */
LARDER_API int larder_inspect(larder *db, const char *ns, const void *key,
			      size_t klen, const void *ver, size_t vlen,
			      unsigned flags, larder_walk_fn cb, void *payload);

/* ---------------------------------------------------------------------- */
/* Quotas, eviction and watermarks                                         */
/*
 * A store can be capped, as a whole and per namespace, in bytes (the entry
 * files' sizes) and in entries. Publishing past a cap starts a cleaning in
 * the publishing process (one cleaner at a time per store; the others
 * skip); larder_gc() runs one on demand. A cleaning always removes expired
 * entries; when over a cap it frees down to 90% of it, superseded versions
 * first (entries whose key's head names another version), then the least
 * recently used (by the file's access time, which a hit refreshes at most
 * once per touch_interval). The cleaning a publish starts never removes
 * the entry that publish made.
 *
 * Free-space watermarks, in percent of the store filesystem's size (bytes,
 * and files where the filesystem counts them), work like cachefilesd's
 * brun/bcull/bstop: below `cull` a cleaning starts and frees until `run`
 * is free again; below `stop`, publishing is refused (LARDER_EFULL) while
 * larder_get_or_fill() still returns the loaded data to its caller.
 *
 * Store-wide settings are kept in DIR/config, namespace ones in
 * DIR/ns/<ns>/config (text, one "name value" a line). A handle re-reads
 * them at most every 2 seconds.
 */

#define LARDER_LIMITS_VERSION 1
typedef struct larder_limits {
	unsigned version;    /* LARDER_LIMITS_VERSION */
	int64_t max_bytes;   /* file bytes; 0 = no cap */
	int64_t max_entries; /* 0 = no cap */
	/* Store-wide only (ignored with a namespace): free-space watermarks
	 * in percent, run > cull > stop >= 0, or all three 0 = off. */
	int wm_run, wm_cull, wm_stop;
	/* Store-wide only: a hit refreshes an entry's access time at most
	 * once per this many seconds. The one field where 0 is a value of
	 * its own, not the default: 0 = on every hit (the stored setting
	 * has always meant that). The default, 60, is what
	 * LARDER_LIMITS_INIT and larder_limits_init() set: start from them
	 * (or from larder_limits_get()) and a zero is always a choice. */
	int64_t touch_interval;
} larder_limits;
#define LARDER_TOUCH_INTERVAL_DEFAULT 60
/* clang-format off */
#define LARDER_LIMITS_INIT \
	{ LARDER_LIMITS_VERSION, 0, 0, 0, 0, 0, LARDER_TOUCH_INTERVAL_DEFAULT }
/* clang-format on */
/* Set *limits to LARDER_LIMITS_INIT. */
LARDER_API void larder_limits_init(larder_limits *limits);

/* The limits of namespace ns, or of the store with ns NULL, into *out,
 * which the caller initialised (its version says what to fill). For a
 * namespace, the store-wide fields are the store's. */
LARDER_API int larder_limits_get(larder_limits *out, larder *db,
				 const char *ns);
/* Set them (the file is replaced atomically; lines this version does not
 * know are kept). With a namespace, only max_bytes and max_entries are
 * written. LARDER_EINVAL for negative caps, bad watermarks or interval.
 * The store's own (ns NULL) are its owner's to set: LARDER_EPERM for
 * anyone else (docs/security.md); a store config that is not the
 * owner's, or that others may write, is ignored with a warning. */
LARDER_API int larder_limits_set(larder *db, const char *ns,
				 const larder_limits *limits);

/* What a cleaning did. The caller initialises it (its version says what
 * the library may fill); the library sets every other field. */
#define LARDER_GC_REPORT_VERSION 1
typedef struct larder_gc_report {
	unsigned version;		   /* LARDER_GC_REPORT_VERSION */
	uint64_t seen_entries, seen_bytes; /* entries found by the walk */
	uint64_t expired;		   /* expired entries removed */
	uint64_t superseded;		   /* superseded versions removed */
	uint64_t evicted;		   /* least recently used removed */
	uint64_t bytes_freed;		   /* file bytes of all of those */
	int skipped; /* another cleaner held the lock: nothing done */
	int passes;  /* walks made (more while still over a cap) */
	/* Stale files of crashed processes removed by the sweep that
	 * larder_gc() runs first (see larder_sweep()), and their bytes. */
	uint64_t swept, swept_bytes;
	/* Head hints removed with the entry they named (a version-less
	 * lookup of that key then misses, as it would anyway). */
	uint64_t heads_removed;
} larder_gc_report;
/* clang-format off */
#define LARDER_GC_REPORT_INIT \
	{ LARDER_GC_REPORT_VERSION, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }
/* clang-format on */
/* Set *report to LARDER_GC_REPORT_INIT. */
LARDER_API void larder_gc_report_init(larder_gc_report *report);

/* gc flags: DRY_RUN decides and reports, removing nothing; LOG_EACH
 * reports each entry removed (or, with DRY_RUN, that would be) through
 * the log callback at LARDER_LOG_INFO. */
/* clang-format off */
#define LARDER_GC_DRY_RUN  0x1u
#define LARDER_GC_LOG_EACH 0x2u
/* clang-format on */

/* Clean namespace ns (NULL = the whole store): sweep the stale files of
 * crashed processes (larder_sweep()), remove expired entries and, when
 * over a cap or below the cull watermark, evict as described above. The
 * cleaning that a publish starts on its own evicts only (it does not
 * sweep): run larder_gc() (`larder gc`) regularly, e.g. daily from cron.
 * Memory stays bounded whatever the store's size (two walks with an
 * access-time histogram). A reader that holds an entry keeps its data. If
 * another process is cleaning the store, returns 0 with out->skipped set.
 * A cleaning pass that cannot lock DIR/gc.lock (but for that), walk the
 * store or remove an entry counts LARDER_CTR_GC_FAILURES; an entry it
 * cannot remove is logged (WARN) and is not an error. out may be NULL;
 * else an initialised report (LARDER_EINVAL for a version the library
 * does not know). */
LARDER_API int larder_gc(larder_gc_report *out, larder *db, const char *ns,
			 unsigned flags);

/* ---------------------------------------------------------------------- */
/* Sweeping: the debris of crashed processes                               */

/* What larder_sweep() removed (or, in a dry run, would remove) and kept.
 * The caller initialises it, as a larder_gc_report. */
#define LARDER_SWEEP_REPORT_VERSION 1
typedef struct larder_sweep_report {
	unsigned version;			      /* the _VERSION below */
	uint64_t temps_removed, temps_kept;	      /* .tmp.* files */
	uint64_t leases_removed, leases_kept;	      /* <key>.lease files */
	uint64_t breaks_removed, breaks_kept;	      /* .break.* files */
	uint64_t quarantine_removed, quarantine_kept; /* quarantine/ files */
	uint64_t bytes_removed; /* file bytes of what was removed */
} larder_sweep_report;
/* clang-format off */
#define LARDER_SWEEP_REPORT_INIT \
	{ LARDER_SWEEP_REPORT_VERSION, 0, 0, 0, 0, 0, 0, 0, 0, 0 }
/* clang-format on */
/* Set *report to LARDER_SWEEP_REPORT_INIT. */
LARDER_API void larder_sweep_report_init(larder_sweep_report *report);

#define LARDER_SWEEP_DRY_RUN 0x1u /* decide and report, remove nothing */

/* Remove the stale files that crashed or killed processes leave behind,
 * in namespace ns (NULL = the whole store, quarantine/ included):
 *  - temp files of writers: this host's whose process is gone (and that
 *    are at least 5 minutes old), anyone's older than 24 hours;
 *  - leases: held on this host (same boot and PID namespace) by a process
 *    that is gone, or not renewed by a heartbeat for an hour (or ten lease
 *    periods, if longer); garbage at a lease's name (not a lease record,
 *    a directory, a FIFO, ...) unchanged for an hour;
 *  - break files (a directory too) older than 10 minutes;
 *  - quarantined entries older than 7 days.
 * Ages are read from the store filesystem's clock, never compared with
 * this host's. Entries, head hints and config files are never removed,
 * nor anything live. The cleaning pass (larder gc) runs this too. Each
 * file removed counts LARDER_CTR_TMP_SWEPT and is logged at INFO; what is
 * kept is logged at DEBUG with the reason. out (may be NULL; else
 * initialised, as for larder_gc()) gets the counts. Returns 0, or the first
 * error met (the sweep goes on past an unreadable directory; files that vanish
 * meanwhile are not errors). Safe to run from several processes and hosts at
 * once. */
LARDER_API int larder_sweep(larder_sweep_report *out, larder *db,
			    const char *ns, unsigned flags);

/* ---------------------------------------------------------------------- */
/* Counters of this handle (since open). Persistent, store-wide counters
 * come with `larder stat` and larder_stats_read() below. Ids are
 * append-only: a counter keeps its number and name for ever.
 *
 * Requests: every larder_get() and larder_get_or_fill() call that passes
 * its argument checks (larder_sql() and `larder run` go through them) is
 * one request, and counts exactly one of
 *   hits    the entry was there (for get_or_fill also a LARDER_STALE
 *           answer: served from the cache while another process loads),
 *   misses  it was not (larder_get: also a failed read; get_or_fill: the
 *           call loaded the data itself, or failed),
 *   waits   get_or_fill waited for another filler and got its entry,
 * so that hits + misses + waits == requests. The library's own lookups
 * (file hashes, get_or_fill's looks while it waits) count nothing. */

enum larder_counter {
	LARDER_CTR_HITS = 0,
	LARDER_CTR_MISSES,
	LARDER_CTR_PUBLISHED,
	LARDER_CTR_PUBLISH_RACED, /* EEXIST: someone else published first */
	LARDER_CTR_CHECKSUM_FAIL,
	LARDER_CTR_QUARANTINED,
	LARDER_CTR_ESTALE_RETRIES,
	LARDER_CTR_WRITE_FAILURES,
	LARDER_CTR_EXPIRED,
	LARDER_CTR_NEWER_FORMAT,
	LARDER_CTR_FILLS,	   /* loads run by larder_get_or_fill */
	LARDER_CTR_WAITS,	   /* requests answered by another's fill */
	LARDER_CTR_FILL_WAIT_MS,   /* milliseconds spent waiting */
	LARDER_CTR_LEASE_BREAKS,   /* stale leases broken */
	LARDER_CTR_LEASE_LOST,	   /* our lease was broken while we loaded */
	LARDER_CTR_SOURCE_CHANGED, /* source changed during a load: retried */
	LARDER_CTR_UNCACHED,	   /* loads returned but not cached */
	LARDER_CTR_FILES_HASHED,   /* source files whose content was hashed */
	LARDER_CTR_FILES_HASHED_BYTES, /* bytes of them read to hash */
	LARDER_CTR_FILES_REMEMBERED,   /* file hashes taken from the store */
	LARDER_CTR_REQUESTS,	  /* lookups asked for: hits + misses + waits */
	LARDER_CTR_EVICTIONS,	  /* entries removed by cleaning */
	LARDER_CTR_BYTES_EVICTED, /* their file bytes */
	LARDER_CTR_TMP_SWEPT,	  /* stale temp, lease, break and quarantine
				   * files removed */
	LARDER_CTR_GC_RUNS,	  /* cleaning passes run */
	LARDER_CTR_PUBLISH_REFUSED, /* refused at the stop watermark */
	LARDER_CTR_TOUCHES,	    /* recency updates written on hits */
	LARDER_CTR_GC_FAILURES,	    /* cleanings that failed (see larder_gc) */
	LARDER_CTR_WALK_SKIPPED,    /* things a walk met that larder did not
				     * make, or that others may write: reported
				     * and skipped (larder_walk) */
	LARDER_CTR_MEMO_HITS, /* hits served from the memo (Repeat hits) */
	/* A store with a shared tier (Tiers): */
	LARDER_CTR_NEAR_HITS,	       /* entries read from the near tier */
	LARDER_CTR_SHARED_HITS,	       /* entries read from the shared tier */
	LARDER_CTR_SHARED_COPIES,      /* shared entries copied into near */
	LARDER_CTR_SHARED_HEAD_CHECKS, /* version-less gets asked of shared */
	LARDER_CTR_SHARED_ERRORS,  /* calls to the shared tier that failed */
	LARDER_CTR_SHARED_SKIPPED, /* calls skipped while it was down */
	LARDER_CTR_SHARED_REFUSED, /* entries it refused (too large, full) */
	/* A Redis shared tier (docs/redis.md): */
	LARDER_CTR_REDIS_LOST_CHUNKS, /* entries read whose chunk was gone
				       * (evicted, expired): a miss */
	LARDER_CTR_REDIS_WAIT_SHORT,  /* publishes whose WAIT saw fewer
				       * replicas than asked, or failed */
	LARDER_CTR_COUNT
};

LARDER_API uint64_t larder_counter(const larder *db, int counter);
/* "hits", "misses", ...; NULL for an unknown counter. */
LARDER_API const char *larder_counter_name(int counter);

/* ---------------------------------------------------------------------- */
/* Store-wide counters and usage
 *
 * Each handle adds its counters and its changes of usage (file bytes and
 * entries per namespace) to one of the store's counter files, DIR/stats/
 * shard-NN (docs/format.md), when it is closed and, in a long-running
 * process, about once a minute at publish or fill time. A hit writes
 * nothing: a handle that counted only lookups (requests, hits, touches,
 * estale retries, file hashes) and was opened less than a minute ago
 * closes without touching the counter files, and those lookups are not
 * counted store-wide (requests and hits alike, so hits + misses + waits
 * = requests still holds; docs/operations.md). Call larder_stats_flush()
 * to have them counted. A process that
 * dies without larder_close() loses what it had not flushed. A counter
 * file that fails its check (torn by a crash, edited) is kept aside as
 * stats/bad-NN.* and counted from zero again.
 */

/* Add this handle's pending counters and usage to the store now.
 * LARDER_EBUSY if every counter file stayed locked for about a second,
 * or the error that kept it from writing (read-only store or no
 * permission: LARDER_EPERM; disk full: LARDER_EFULL); it is logged once
 * per handle, and nothing pending is lost: it stays for the next flush.
 * A forked child does not flush what its parent counted on the handle
 * before the fork (the parent does). Thread-safe. */
LARDER_API int larder_stats_flush(larder *db);

/* A snapshot of the store-wide figures: the sum of the counter files plus
 * this handle's pending counts. Owned by the caller, freed with
 * larder_stats_free(); independent of db once made; not shared between
 * threads without locking. */
typedef struct larder_stats larder_stats;
LARDER_API int larder_stats_read(larder_stats **out, larder *db);
LARDER_API void larder_stats_free(larder_stats *s); /* NULL is a no-op */

/* Counters: indices 0 .. larder_stats_counters(s) - 1. The first
 * LARDER_CTR_COUNT are this build's counters by id; after them come, by
 * name, counters that a newer larder wrote to the store. Returns the
 * name (valid while s is) and the value in *value; NULL past the end. */
LARDER_API size_t larder_stats_counters(const larder_stats *s);
LARDER_API const char *larder_stats_counter(uint64_t *value,
					    const larder_stats *s, size_t i);

/* Usage per namespace, sorted by name: the namespace's name (valid while
 * s is), its entry files' bytes and its number of entries (never below 0);
 * NULL past the end. Namespaces that never changed since the counters
 * began are absent. */
LARDER_API size_t larder_stats_namespaces(const larder_stats *s);
LARDER_API const char *larder_stats_usage(int64_t *bytes, int64_t *entries,
					  const larder_stats *s, size_t i);

/* How many counter files were read, and in *bad (if not NULL) how many
 * of them failed their check and were left out. */
LARDER_API unsigned larder_stats_shards(unsigned *bad, const larder_stats *s);

/* ---------------------------------------------------------------------- */
/* `larder run` keys
 *
 * `larder run` keeps a command's stdout and exit status under a key that
 * names the run. The key's encoding is a stable format, tagged
 * LARDER_RUN_FORMAT ("larder-run/2"; docs/cli.md, "What is stored, byte by
 * byte"): any client that describes the same run gets the same bytes, so
 * it finds and shares the entries `larder run` made (in the namespace
 * `larder run --ns` used, under the version and with the payload trailer
 * that docs/cli.md describes). A later encoding takes another tag; this
 * one never changes.
 */

/* The format tag: the first line of a run's key and version, and the
 * metadata of its entries. */
#define LARDER_RUN_FORMAT "larder-run/2"

#define LARDER_RUN_SPEC_VERSION 1
/* A run as `larder run` takes it; every string is NUL-terminated and
 * borrowed for the call only. */
typedef struct larder_run_spec {
	unsigned version; /* LARDER_RUN_SPEC_VERSION */
	/* --key: names the result instead of cwd and argv; NULL: none */
	const char *key;
	/* Without key: the working directory (as getcwd() gives it) and the
	 * command with its arguments (argc at least 1). Ignored with key. */
	const char *cwd;
	const char *const *argv;
	size_t argc;
	/* --input names, as given, in order */
	const char *const *inputs;
	size_t ninputs;
	/* --env variables, in order: "NAME=VALUE" for a set variable (empty
	 * VALUE included), "NAME" alone for an unset one */
	const char *const *env;
	size_t nenv;
	const char *version_cmd; /* --version-cmd text, NULL: none */
	int cache_failures;	 /* --cache-failures: non-zero */
} larder_run_spec;
#define LARDER_RUN_SPEC_INIT                                                   \
	{                                                                      \
		LARDER_RUN_SPEC_VERSION, NULL, NULL, NULL, 0, NULL, 0, NULL,   \
		    0, NULL, 0                                                 \
	}
/* Set *spec to LARDER_RUN_SPEC_INIT (for callers that cannot expand the
 * macro). NULL is a no-op. */
LARDER_API void larder_run_spec_init(larder_run_spec *spec);

/* The key of the run `spec` describes, in *out (NUL-terminated for
 * convenience; the key is the *outlen bytes before the NUL), to be freed
 * with larder_run_key_free(). LARDER_EINVAL for a NULL argument, a spec of
 * another version, a NULL string in a list, or neither key nor cwd and a
 * non-empty argv; LARDER_ENOMEM. Needs no store; thread-safe. */
LARDER_API int larder_run_key(char **out, size_t *outlen,
			      const larder_run_spec *spec);
/* Free a key from larder_run_key(). NULL is a no-op. */
LARDER_API void larder_run_key_free(char *key);

#ifdef __cplusplus
}
#endif
#endif /* LARDER_H */
