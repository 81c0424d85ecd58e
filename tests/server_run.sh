# server_run.sh — what the run.sh of a test against a real server
# (tests/gluster/run.sh, tests/pg/run.sh) shares (sourced, not run).
#
# Usage:  . "$here/../server_run.sh"
#         server_up NAME TAG SCRIPT BASE SKIP_RC NOT_REASON
# One run per base directory at a time: concurrent runs, from other build
# directories too, wait for each other on BASE.lock (descriptor 9, which
# the caller closes for what it starts: 9>&-). Then `sh SCRIPT start`,
# its output in $out, with `sh SCRIPT stop` trapped at exit before the
# start: a run killed while the server starts (a CTest timeout) still
# stops it, by the pid it recorded. Where the server cannot run here
# (SCRIPT start exits 77), prints "SKIP: <reason>" (the last line of the
# output that does not match the grep pattern NOT_REASON) and "0 passed,
# 0 failed, 1 skipped", and exits SKIP_RC. NAME names the server in
# messages ("GlusterFS"), TAG its timings ("gluster start: 2.1 s").

elapsed() {
	awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}

server_down() {
	rm -f "$out"
	t0=$(date +%s.%N)
	if sh "$server_script" stop 9>&-; then
		echo "$server_tag stop: $(elapsed "$t0") s"
	else
		echo "FAIL: ${server_script##*/} stop left something behind" >&2
		exit 1
	fi
}

server_up() {
	server_tag=$2
	server_script=$3
	lock=$4.lock
	exec 9>"$lock"
	if command -v flock >/dev/null 2>&1; then
		flock -w 600 9 || {
			echo "FAIL: another $1 test run held $lock for 10 minutes" >&2
			exit 1
		}
	fi
	out=$(mktemp "${TMPDIR:-/tmp}/larder-$server_tag-start.XXXXXX")
	trap server_down EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	t0=$(date +%s.%N)
	set +e
	sh "$server_script" start >"$out" 2>&1 9>&-
	rc=$?
	set -e
	if [ $rc -eq 77 ]; then
		echo "SKIP: $(grep -v "$6" "$out" | tail -1)"
		rm -f "$out"
		trap - EXIT
		echo "0 passed, 0 failed, 1 skipped"
		exit "$5"
	fi
	if [ $rc -ne 0 ]; then
		cat "$out" >&2
		echo "FAIL: ${server_script##*/} start exited $rc" >&2
		exit 1
	fi
	echo "$server_tag start: $(elapsed "$t0") s"
}
