/*
 * mtab.c — mounts by mount point, and the processes that hold one
 * (mtab.h).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mtab.h"

/* mountinfo writes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' &&
		    r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') << 6 | (r[2] - '0') << 3 |
				      (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

int mount_find(const char *mnt, struct mount_entry *out)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	int found = 0;

	if (!f)
		return -1;
	while (getline(&line, &cap, f) > 0) {
		char *save = NULL;
		char *fields[10] = {0};
		int nf = 0;
		for (char *t = strtok_r(line, " \n", &save); t && nf < 10;
		     t = strtok_r(NULL, " \n", &save)) {
			/* Optional fields end at "-"; keep type and
			 * source after it. */
			if (strcmp(t, "-") == 0) {
				if (nf < 5)
					break;
				nf = 6;
				continue;
			}
			if (nf < 5 || nf >= 6)
				fields[nf++] = t;
		}
		if (nf < 8 || !fields[2] || !fields[4])
			continue;
		unescape(fields[4]);
		if (strcmp(fields[4], mnt) != 0)
			continue;
		struct mount_entry e;
		memset(&e, 0, sizeof(e));
		if (sscanf(fields[2], "%u:%u", &e.major, &e.minor) != 2)
			continue;
		snprintf(e.fstype, sizeof(e.fstype), "%s", fields[6]);
		unescape(fields[7]);
		snprintf(e.source, sizeof(e.source), "%s", fields[7]);
		*out = e; /* the last one listed is on top */
		found = 1;
	}
	free(line);
	fclose(f);
	return found;
}

int mount_abspath(const char *path, char *out)
{
	char copy[PATH_MAX], copy2[PATH_MAX], dir[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(copy)) {
		errno = len ? ENAMETOOLONG : ENOENT;
		return -1;
	}
	memcpy(copy, path, len + 1);
	while (len > 1 && copy[len - 1] == '/')
		copy[--len] = '\0';
	memcpy(copy2, copy, len + 1);
	const char *base = basename(copy2);
	if (!realpath(dirname(copy), dir))
		return -1;
	if (strcmp(base, "/") == 0)
		return snprintf(out, PATH_MAX, "/") < 0 ? -1 : 0;
	if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
		/* Nothing to spare: resolve it whole. */
		return realpath(path, out) ? 0 : -1;
	}
	if (snprintf(out, PATH_MAX, "%s%s%s", dir,
		     strcmp(dir, "/") == 0 ? "" : "/", base) >= PATH_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static int under(const char *path, const char *mnt)
{
	size_t n = strlen(mnt);
	return strncmp(path, mnt, n) == 0 &&
	       (path[n] == '\0' || path[n] == '/');
}

/* Whether the link at /proc/PID/<rel> points under mnt. */
static int link_under(const char *pid, const char *rel, const char *mnt)
{
	char p[64 + NAME_MAX], target[PATH_MAX];
	ssize_t len;

	snprintf(p, sizeof(p), "/proc/%s/%s", pid, rel);
	len = readlink(p, target, sizeof(target) - 1);
	if (len < 0)
		return 0;
	target[len] = '\0';
	return under(target, mnt);
}

/* What of pid is under mnt: "cwd", "root", "open file", "mapping", or
 * NULL. */
static const char *holds(const char *pid, const char *mnt)
{
	char p[64 + NAME_MAX];
	const char *what = NULL;

	if (link_under(pid, "cwd", mnt))
		return "working directory";
	if (link_under(pid, "root", mnt))
		return "root directory";
	snprintf(p, sizeof(p), "/proc/%s/fd", pid);
	DIR *d = opendir(p);
	if (d) {
		struct dirent *de;
		char rel[32 + NAME_MAX];
		while (!what && (de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(rel, sizeof(rel), "fd/%s", de->d_name);
			if (link_under(pid, rel, mnt))
				what = "open file";
		}
		closedir(d);
	}
	if (what)
		return what;
	snprintf(p, sizeof(p), "/proc/%s/maps", pid);
	FILE *f = fopen(p, "re");
	if (f) {
		char *line = NULL;
		size_t cap = 0;
		while (!what && getline(&line, &cap, f) > 0) {
			char *path = strchr(line, '/');
			if (!path)
				continue;
			path[strcspn(path, "\n")] = '\0';
			if (under(path, mnt))
				what = "mapped file";
		}
		free(line);
		fclose(f);
	}
	return what;
}

int mount_holders(const char *mnt, FILE *f)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int count = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		const char *what = holds(de->d_name, mnt);
		if (!what)
			continue;
		char p[64 + NAME_MAX], comm[64] = "?";
		snprintf(p, sizeof(p), "/proc/%s/comm", de->d_name);
		FILE *c = fopen(p, "re");
		if (c) {
			if (fgets(comm, sizeof(comm), c))
				comm[strcspn(comm, "\n")] = '\0';
			fclose(c);
		}
		fprintf(f, "  pid %s (%s): %s\n", de->d_name, comm, what);
		count++;
	}
	closedir(d);
	return count;
}
