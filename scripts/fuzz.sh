#!/bin/sh
# Build the libFuzzer targets with clang in build-fuzz/ and run each on a
# copy of its seed corpus for SECONDS (default 30). Exits non-zero if the
# fuzzer finds a crash, a sanitizer error, a leak or a hang; the reproducer
# is left as fuzz/crash-* (or leak-*, timeout-*), which git ignores.
#
#   scripts/fuzz.sh [SECONDS]
#   build-fuzz/fuzz/fuzz_header fuzz/crash-...    # replay one input
#
# Needs clang and libclang-rt-14-dev (scripts/deps.sh installs them).
set -eu

secs=${1:-30}
case $secs in
'' | *[!0-9]*)
	echo "usage: scripts/fuzz.sh [SECONDS]" >&2
	exit 2
	;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bdir=${FUZZ_BUILD:-build-fuzz}
cc=${FUZZ_CC:-clang}

if ! command -v "$cc" >/dev/null 2>&1; then
	echo "fuzz.sh: $cc not found (run scripts/deps.sh)" >&2
	exit 1
fi

cmake -S . -B "$bdir" -DCMAKE_C_COMPILER="$cc" -DLARDER_FUZZ=ON \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$bdir" --target fuzz_header -j "$(nproc)"

work=$(mktemp -d "${TMPDIR:-/tmp}/larder-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

rc=0
for target in fuzz_header; do
	name=${target#fuzz_}
	mkdir -p "$work/$name"
	# The fuzzer adds what it finds to its first corpus directory: give it
	# a copy so the checked-in seeds stay as generated.
	cp fuzz/corpus/* "$work/$name/"
	n=$(ls "$work/$name" | wc -l)
	echo "fuzz.sh: running $target for ${secs}s on $n seeds"
	# -timeout: one input taking seconds is a hang, not slowness.
	# -rss_limit_mb: the parser allocates nothing large.
	if ! "$bdir/fuzz/$target" -max_total_time="$secs" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$root/fuzz/" "$work/$name" \
		>"$work/$name.log" 2>&1; then
		tail -n 60 "$work/$name.log" >&2
		echo "fuzz.sh: $target FAILED; reproducer in fuzz/" \
			"(replay: $bdir/fuzz/$target FILE)" >&2
		rc=1
	else
		grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss)' \
			"$work/$name.log" || true
		echo "fuzz.sh: $target ok"
	fi
done
exit $rc
