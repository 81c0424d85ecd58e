#!/bin/sh
# Payloads survive put/get byte for byte: binary with NULs, empty, 20 MiB,
# from a file, from stdin (pipe and redirect), to stdout and to -o FILE.
. "$(dirname "$0")/lib.sh" "$1"

expect_rc 0 "init creates a store" L init
check "init made the directory" test -d "$S"
expect_rc 0 "init on an existing store is a no-op" L init

printf 'a\000b\000\000c\377\n\001end' >"$T/bin"
expect_rc 0 "put a binary file with NULs" L put bin "$T/bin"
run L get bin
check "binary payload comes back identical" cmp -s "$T/bin" "$T/out"

: >"$T/empty"
expect_rc 0 "put an empty payload" L put empty "$T/empty"
expect_rc 0 "get an empty payload" L get empty
check "empty payload comes back empty" test ! -s "$T/out"

head -c 20971520 /dev/urandom >"$T/big"
expect_rc 0 "put a 20 MiB file" L put big "$T/big"
expect_rc 0 "get a 20 MiB entry to stdout" L get big
check "20 MiB payload via stdout is identical" cmp -s "$T/big" "$T/out"
expect_rc 0 "get -o a 20 MiB entry" L get big -o "$T/big.out"
check "20 MiB payload via -o is identical" cmp -s "$T/big" "$T/big.out"

expect_rc 0 "put from a pipe with '-'" sh -c 'cat "$1" | "$2" --dir "$3" put piped -' sh "$T/bin" "$LARDER" "$S"
run L get piped
check "piped payload comes back identical" cmp -s "$T/bin" "$T/out"
expect_rc 0 "put from a pipe with no FILE" sh -c 'cat "$1" | "$2" --dir "$3" put piped2' sh "$T/big" "$LARDER" "$S"
run L get piped2
check "20 MiB piped payload comes back identical" cmp -s "$T/big" "$T/out"
expect_rc 0 "put from a redirected stdin" sh -c '"$2" --dir "$3" put redir <"$1"' sh "$T/bin" "$LARDER" "$S"
run L get redir
check "redirected payload comes back identical" cmp -s "$T/bin" "$T/out"

# The default version is the content hash: same bytes, same version.
run L inspect bin
v_file=$(json_get "$T/out" 'j["version"]')
run L inspect piped
v_pipe=$(json_get "$T/out" 'j["version"]')
check "default version is 32 hex digits" sh -c 'echo "$1" | grep -Eq "^[0-9a-f]{32}$"' sh "$v_file"
check "same bytes from a file or a pipe get the same version" test "$v_file" = "$v_pipe"
# Known answers (xxh128sum): the empty input and "abc".
run L inspect empty
check "version of empty content is its XXH3-128" test "$(json_get "$T/out" 'j["version"]')" = 99aa06d3014798d86001c324468d497f
printf abc | L put abc
run L inspect abc
check "version of 'abc' is its XXH3-128" test "$(json_get "$T/out" 'j["version"]')" = 06b05ab6733a618578af5f94892f3950
expect_rc 0 "re-putting the same bytes succeeds" L -v put bin "$T/bin"
expect_err "already stored" "re-putting the same bytes says it was already stored (-v)"
run L put bin "$T/bin"
check "put prints nothing without -v" test ! -s "$T/out" -a ! -s "$T/err"

printf 'version two' >"$T/bin2"
expect_rc 0 "putting new bytes under the same key" L put bin "$T/bin2"
run L get bin
check "new bytes move the head" cmp -s "$T/bin2" "$T/out"

# Streaming: a 128 MiB payload from a pipe (spooled) and from a file must
# not be held in memory. Peak RSS of the child, measured by the parent.
maxrss() {
	python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$@"
}
head -c 134217728 /dev/zero >"$T/huge"
rss=$(TMPDIR=$T maxrss sh -c 'cat "$1" | "$2" --dir "$3" put huge' sh "$T/huge" "$LARDER" "$S")
check "put of 128 MiB from a pipe stays under 64 MiB RSS ($rss KiB)" test "${rss:-999999}" -lt 65536
rss=$(maxrss "$LARDER" --dir "$S" put huge2 "$T/huge")
check "put of a 128 MiB file stays under 64 MiB RSS ($rss KiB)" test "${rss:-999999}" -lt 65536
run L get huge2
check "128 MiB payload comes back identical" cmp -s "$T/huge" "$T/out"
rm -f "$T/huge" "$T/out"

# -o: the file appears whole or not at all.
expect_rc 0 "get -o FILE" L get bin -o "$T/o1"
check "get -o writes the payload" cmp -s "$T/bin2" "$T/o1"
expect_rc 0 "get --output FILE replaces an existing file" L get big --output "$T/o1"
check "replaced file has the new payload" cmp -s "$T/big" "$T/o1"
expect_rc 1 "get -o of a missing key misses" L get nosuch -o "$T/o2"
check "a missed get -o leaves no file" test ! -e "$T/o2"
check "no temp files left beside the output" sh -c '! ls "$1" | grep -q tmp-' sh "$T"
# A put killed mid-write (SIGKILL: no handler runs) publishes nothing,
# and the temp file it leaves goes with the next sweep once its process
# is gone and it is older than the sweep's minimum age (5 min,
# src/upkeep/sweep.c): the test ages it rather than waiting. The put
# reads a FIFO that the test holds open (O_RDWR, so the open never blocks):
# it is mid-write for certain when it is killed, since its input has not
# ended and its temp file already holds the first MiB.
temps() { find "$S" -name '.tmp.*' -type f; }
rm -f "$T/kfifo"
mkfifo "$T/kfifo"
exec 5<>"$T/kfifo"
"$LARDER" --dir "$S" put killed "$T/kfifo" --version v1 2>/dev/null 5>&- &
kpid=$!
track "$kpid"
timeout 60 head -c 1048576 /dev/zero >&5
i=0
# grown: the temp file holds at least the MiB written (the entry's header
# comes first).
grown() { [ "$(temps | xargs -r stat -c %s | sort -n | tail -1)" -ge 1048576 ] 2>/dev/null; }
until grown || [ $i -ge 6000 ]; do
	sleep 0.01 # polling for the event, not waiting for it to happen
	i=$((i + 1))
done
check "a put from an open FIFO has written its first MiB to a temp file" grown
check "... and is still running" kill -0 "$kpid"
kill -KILL "$kpid"
wait "$kpid" 2>/dev/null
krc=$?
exec 5>&-
check "the put died of SIGKILL (exit $krc)" test "$krc" -eq 137
expect_rc 1 "a put killed mid-write published nothing" L get killed
check "its temp file is still there" test "$(temps | wc -l)" -eq 1
expect_rc 0 "gc while the temp file is young" L gc
check "a young temp file is kept (its writer could be alive elsewhere)" test "$(temps | wc -l)" -eq 1
temps | xargs touch -m -d "@$(($(date +%s) - 360))"
expect_rc 0 "gc once the temp file is 6 min old" L gc
check "the dead writer's temp file is gone" test -z "$(temps)"
expect_rc 1 "and still nothing is published" L get killed
expect_rc 0 "get -o - writes to stdout" L get bin -o -
check "get -o - payload is identical" cmp -s "$T/bin2" "$T/out"

# Options stored with the payload.
expect_rc 0 "put --zstd" L put z "$T/big" --zstd
run L get z
check "zstd payload comes back identical" cmp -s "$T/big" "$T/out"
expect_rc 0 "put --meta" L put m "$T/bin" --meta 'content-type: x/y'
run L inspect m
check "inspect shows the metadata" test "$(json_get "$T/out" 'j["meta"]')" = 'content-type: x/y'

# A reader that stops early is not an error.
( L get big; echo $? >"$T/pipe_rc" ) 2>"$T/err" | head -c 10 >/dev/null
check "get into a closed pipe exits 0" test "$(cat "$T/pipe_rc")" = 0
check "get into a closed pipe prints no error" test ! -s "$T/err"

finish
