# common.sh — what the benchmark scripts under bench/*/ share (sourced,
# not run): their arguments, a scratch directory that goes away however
# the script ends, measurements run so that an interrupt stops them, and
# the lines that say on what machine and under what load a run was made.
#
# Usage:  . "$(dirname "$0")/../common.sh"
# at the top of a script: reads the script's arguments, [--quick] BUILD
# [DIR], and sets quick ("--quick" or empty), build, base (DIR, default
# $TMPDIR, else /tmp), here (the script's directory) and py (Debian's interpreter, where Debian's python3-* modules live:
# the python3 first on PATH may be another one).

quick=""
if [ "${1:-}" = --quick ]; then
	quick=--quick
	shift
fi
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: run.sh [--quick] BUILD [DIR]" >&2
	exit 2
fi
build=$1
base=${2:-${TMPDIR:-/tmp}}
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3

work=""
bench_pids=""
child=""

# bench_workdir NAME: a fresh directory $work under $base, removed at
# exit, after the processes handed to bench_track and the measurement
# under way are stopped (by pid). The INT/TERM/HUP traps exit, which
# runs the EXIT trap.
bench_workdir() {
	work=$(mktemp -d "$base/$1.XXXXXX")
	trap bench_cleanup EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# shellcheck disable=SC2317 # run by the EXIT trap, not reached in line
bench_cleanup() {
	for pid in $child $bench_pids; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	[ -z "$work" ] || rm -rf "$work"
}

# bench_track PID: a server the script started, stopped at exit.
bench_track() {
	bench_pids="$bench_pids $1"
}

# bench_run CMD...: runs a measurement in the background and waits for
# it: the shell runs a trap only once its foreground command ends, but
# interrupts a wait. Returns CMD's status.
bench_run() {
	"$@" &
	child=$!
	status=0
	wait "$child" || status=$?
	child=""
	return "$status"
}

# bench_header [WHAT]: the run's date, machine, kernel, larder's commit,
# WHAT (the versions of the peers), and the load average at the start.
bench_header() {
	machine=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($machine),\
 kernel $(uname -r), larder $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo '?'),\
${1:+ $1,} load average $(cut -d' ' -f1-3 /proc/loadavg)${quick:+ -- quick: not a measurement}"
}

# bench_load_end: the load average at the end, to set beside the start's.
bench_load_end() {
	echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
}
