#!/bin/sh
# larder run: a command's stdout and exit status are memoized; the command
# runs once for a herd; inputs, --env, --version-cmd and the working
# directory decide when it runs again; failures are not cached; output is
# streamed on a fill. Synchronisation is by FIFOs, never by sleeping.
. "$(dirname "$0")/lib.sh" "$1"

L init >/dev/null 2>&1 || bail "cannot init"
side=$T/side
# An input for the tests of remembered file hashes, made early: a file of
# 64 KiB or more is remembered once its timestamps are 2 s old
# (docs/versions.md).
head -c 100000 /dev/urandom >"$T/settled"

# settle FILE: wait until FILE's ctime is more than 2 s old by our clock
# (the racy-timestamp margin under test, not a synchronisation).
settle() {
	until [ "$(date +%s)" -gt "$(($(stat -c %Z "$1") + 2))" ]; do sleep 0.2; done
}

# lines FILE: its number of lines, 0 if it does not exist.
lines() {
	if [ -f "$1" ]; then wc -l <"$1" | tr -d ' '; else echo 0; fi
}

# same_lines WANT DESC: the side file has WANT lines (runs of the command).
runs_are() {
	n=$(lines "$side")
	if [ "$n" -eq "$1" ]; then ok "$2 ($n runs)"; else not_ok "$2: $n runs, want $1"; fi
}

# A FIFO opened read-write by the test itself never blocks its openers and
# never reports EOF, so it serves as a counted barrier either way.
fifo() {
	rm -f "$1" && mkfifo "$1"
}

# --- fill, then hit ------------------------------------------------------
cmd='echo run >>"$1"; echo "hello, world"; echo to-stderr >&2; exit 0'
expect_rc 0 "a first run fills" L run -v -- sh -c "$cmd" sh "$side"
cp "$T/out" "$T/fill.out"
check "the fill prints the command's stdout" grep -qx "hello, world" "$T/fill.out"
expect_err "^filled in [0-9]+\.[0-9]{3} s \(exit 0\)$" "-v says 'filled in N.NNN s'"
expect_err "^to-stderr$" "stderr is passed through on a fill"
check "stderr does not reach stdout" test "$(cat "$T/fill.out")" = "hello, world"
expect_rc 0 "a second run hits" L run -v -- sh -c "$cmd" sh "$side"
check "the hit prints identical stdout" cmp -s "$T/fill.out" "$T/out"
expect_err "^hit in [0-9]+\.[0-9]{3} s \(exit 0\)$" "-v says 'hit in N.NNN s'"
if grep -q to-stderr "$T/err"; then not_ok "stderr is not cached"; else ok "stderr is not cached"; fi
check "-v prints exactly one line" test "$(wc -l <"$T/err")" -eq 1
runs_are 1 "the command ran once for a fill and a hit"
run L run -- sh -c "$cmd" sh "$side"
check "without -v a hit prints nothing on stderr" test ! -s "$T/err"

# --- exit status ---------------------------------------------------------
: >"$side"
fcmd='echo run >>"$1"; echo partial; exit 3'
expect_rc 3 "a failing command's status is propagated" L run -v -- sh -c "$fcmd" sh "$side"
expect_out "^partial$" "a failing command's output still reaches the caller"
expect_err "^uncached in [0-9]+\.[0-9]{3} s \(exit 3; a failing command is not cached\)$" "-v says 'uncached' for a failure"
expect_rc 3 "a failure is not cached: the next run fails again" L run -v -- sh -c "$fcmd" sh "$side"
expect_err "^uncached" "the second failing run ran too"
runs_are 2 "a failing command runs every time"

: >"$side"
expect_rc 3 "--cache-failures: the first run" L run --cache-failures -- sh -c "$fcmd" sh "$side"
expect_rc 3 "--cache-failures: a hit keeps the stored exit status" L run -v --cache-failures -- sh -c "$fcmd" sh "$side"
expect_out "^partial$" "--cache-failures: the hit prints the stored output"
expect_err "^hit in" "--cache-failures: the second run is a hit"
runs_are 1 "--cache-failures: the failing command ran once"

: >"$side"
expect_rc 137 "a command killed by SIGKILL exits 128+9" L run -- sh -c 'echo run >>"$1"; echo before; kill -KILL $$' sh "$side"
expect_out "^before$" "a killed command's output reaches the caller"
expect_rc 137 "a killed command is not cached" L run -- sh -c 'echo run >>"$1"; echo before; kill -KILL $$' sh "$side"
runs_are 2 "a killed command runs every time"

# --- what the output can be ----------------------------------------------
printf 'a\000b\000\377\n\000' >"$T/bin.want"
expect_rc 0 "binary stdout: fill" L run -- printf 'a\000b\000\377\n\000'
check "binary stdout with NUL bytes survives a fill" cmp -s "$T/bin.want" "$T/out"
expect_rc 0 "binary stdout: hit" L run -- printf 'a\000b\000\377\n\000'
check "binary stdout with NUL bytes survives a hit" cmp -s "$T/bin.want" "$T/out"

expect_rc 0 "empty stdout: fill" L run -- true
check "empty stdout stays empty" test ! -s "$T/out"
expect_rc 0 "empty stdout: hit" L run -v -- true
expect_err "^hit in" "an empty result is cached"

expect_rc 0 "the command's own options are its own after --" L run -- echo -n -v hi
check "echo -n -v is not taken for larder's -n and -v" test "$(cat "$T/out")" = "-v hi"

head -c 50000000 /dev/urandom >"$T/big"
: >"$side"
bigcmd='echo run >>"$1"; cat "$2"'
expect_rc 0 "50 MB of stdout: fill" L run --input "$T/big" -- sh -c "$bigcmd" sh "$side" "$T/big"
check "50 MB of stdout identical after a fill" cmp -s "$T/big" "$T/out"
expect_rc 0 "50 MB of stdout: hit" L run -v --input "$T/big" -- sh -c "$bigcmd" sh "$side" "$T/big"
check "50 MB of stdout identical after a hit" cmp -s "$T/big" "$T/out"
expect_err "^hit in" "the 50 MB result is a hit"
runs_are 1 "the 50 MB command ran once"
rm -f "$T/big" "$T/out"

# Streaming: the first line must arrive while the command is still blocked
# on a FIFO, i.e. before it ends. The reader then goes away; the command
# runs on to its end and its whole output is cached.
fifo "$T/sgo"
fifo "$T/sout"
exec 6<>"$T/sgo"
scmd='echo first; read x <"$1"; echo second'
L run -- sh -c "$scmd" sh "$T/sgo" >"$T/sout" 2>"$T/s.err" &
spid=$!
timeout 30 head -n 1 <"$T/sout" >"$T/s.first"
check "a fill streams: the first line arrives before the command ends" grep -qx first "$T/s.first"
echo go >&6
wait $spid
src=$?
check "after its reader left, larder run still exits with the command's status (0)" test "$src" -eq 0
if grep -q . "$T/s.err"; then not_ok "a reader going away is not an error"; else ok "a reader going away is not an error"; fi
expect_rc 0 "the run whose reader left was cached whole" L run -v -- sh -c "$scmd" sh "$T/sgo"
check "its cached output is complete" test "$(cat "$T/out")" = "$(printf 'first\nsecond')"
expect_err "^hit in" "and it is a hit"
exec 6>&-

# --- what decides a re-run -----------------------------------------------
: >"$side"
printf 'one\n' >"$T/in"
icmd='echo run >>"$1"; cat "$2"'
expect_rc 0 "--input: fill" L run --input "$T/in" -- sh -c "$icmd" sh "$side" "$T/in"
expect_rc 0 "--input unchanged: hit" L run -v --input "$T/in" -- sh -c "$icmd" sh "$side" "$T/in"
expect_err "^hit in" "an unchanged input is a hit"
printf 'two\n' >"$T/in"
expect_rc 0 "--input changed (same size): re-run" L run -v --input "$T/in" -- sh -c "$icmd" sh "$side" "$T/in"
expect_err "^filled in" "a changed input re-runs the command"
expect_out "^two$" "the re-run prints the new content"
runs_are 2 "an input change ran the command again"
expect_rc 4 "a missing --input is an I/O error" L run --input "$T/nope" -- sh -c "$icmd" sh "$side" "$T/nope"
expect_err "^larder: run: --input: cannot stat '.*nope': No such file" "a missing input is named"
runs_are 2 "a missing input does not run the command"

# The version is the inputs' content, not their inode or times: a new
# file with the same bytes (another inode, as another host would see it)
# or a touch is a hit.
printf 'two\n' >"$T/in.new"
mv "$T/in.new" "$T/in"
touch -d '2001-01-01' "$T/in"
expect_rc 0 "--input replaced by the same bytes" L run -v --input "$T/in" -- sh -c "$icmd" sh "$side" "$T/in"
expect_err "^hit in" "the same content under another inode and mtime is a hit"
runs_are 2 "same content: the command did not run again"

# A directory is the tree under it.
: >"$side"
mkdir -p "$T/tree/sub"
printf 'a\n' >"$T/tree/a"
printf 'b\n' >"$T/tree/sub/b"
tcmd='echo run >>"$1"; cat "$2/a" "$2/sub/b"'
expect_rc 0 "--input DIR: fill" L run --input "$T/tree" -- sh -c "$tcmd" sh "$side" "$T/tree"
expect_rc 0 "--input DIR unchanged: hit" L run -v --input "$T/tree" -- sh -c "$tcmd" sh "$side" "$T/tree"
expect_err "^hit in" "an unchanged tree is a hit"
printf 'B\n' >"$T/tree/sub/b"
expect_rc 0 "--input DIR, a file changed deep inside" L run -v --input "$T/tree" -- sh -c "$tcmd" sh "$side" "$T/tree"
expect_err "^filled in" "a change inside the tree re-runs the command"
expect_out "^B$" "the re-run saw the new content"
printf 'new\n' >"$T/tree/sub/c"
expect_rc 0 "--input DIR, a file added" L run -v --input "$T/tree" -- sh -c "$tcmd" sh "$side" "$T/tree"
expect_err "^filled in" "a file added to the tree re-runs the command"
runs_are 3 "a tree: fill, change, addition"
mkfifo "$T/fifo"
expect_rc 4 "--input FIFO is refused" L run --input "$T/fifo" -- true
expect_err "--input: '.*fifo' is a FIFO" "a FIFO input is named"

# Remembered file hashes are entries of the internal namespace .files:
# listed and checked by name, left out of the user's listings.
settle "$T/settled"
expect_rc 0 "a settled --input: fill" L run --input "$T/settled" -- wc -c "$T/settled"
expect_rc 0 "a settled --input: hit" L run -v --input "$T/settled" -- wc -c "$T/settled"
expect_err "^hit in" "a settled input hits"
expect_rc 0 "verify the whole store after --input runs" L verify
expect_rc 0 "ls --ns .files" L ls --ns .files
expect_out "LDRFILE1" "ls --ns .files lists remembered file hashes"
expect_rc 0 "verify --ns .files" L verify --ns .files
expect_out "entries checked, ([0-9]+) ok, 0 corrupt" "verify --ns .files checks them"
L ls --all-namespaces >"$T/ls" 2>/dev/null
if grep -q LDRFILE1 "$T/ls"; then not_ok "ls --all-namespaces leaves .files out"; else ok "ls --all-namespaces leaves .files out"; fi
expect_rc 2 "put into .files is refused" L --ns .files put k "$T/in"

# Sources changing during the run: the command edits its own input on its
# first run only. The caller sees the first run's output once; the cache
# gets the second run's.
: >"$side"
printf 'v1\n' >"$T/in2"
ccmd='cat "$2"; if [ ! -s "$1" ]; then echo run >>"$1"; echo v2 >"$2"; else echo run >>"$1"; fi'
expect_rc 0 "sources changed during the run" L run -v --input "$T/in2" -- sh -c "$ccmd" sh "$side" "$T/in2"
check "the caller sees one run's output, once" test "$(cat "$T/out")" = v1
expect_err "^filled in .*sources changed during the run: ran 2 times" "-v says the command ran again"
runs_are 2 "a change during the run re-ran the command"
expect_rc 0 "after a change during the run: hit" L run -v --input "$T/in2" -- sh -c "$ccmd" sh "$side" "$T/in2"
check "the cached result is the second run's" test "$(cat "$T/out")" = v2
expect_err "^hit in" "the second run's result was cached"

: >"$side"
ecmd='echo run >>"$1"; echo "[${LARDER_T_X-unset}]"'
expect_rc 0 "--env unset" env -u LARDER_T_X "$LARDER" --dir "$S" run --env LARDER_T_X -- sh -c "$ecmd" sh "$side"
expect_out '^\[unset\]$' "--env unset: output"
expect_rc 0 "--env empty" env LARDER_T_X= "$LARDER" --dir "$S" run --env LARDER_T_X -- sh -c "$ecmd" sh "$side"
expect_out '^\[\]$' "--env: empty is not unset"
expect_rc 0 "--env =1" env LARDER_T_X=1 "$LARDER" --dir "$S" run --env LARDER_T_X -- sh -c "$ecmd" sh "$side"
expect_out '^\[1\]$' "--env: a new value re-runs"
expect_rc 0 "--env =1 again" env LARDER_T_X=1 "$LARDER" --dir "$S" run -v --env LARDER_T_X -- sh -c "$ecmd" sh "$side"
expect_err "^hit in" "--env: the same value hits"
runs_are 3 "--env: unset, empty and 1 each ran once"
expect_rc 0 "a variable not named by --env" env LARDER_T_X=2 "$LARDER" --dir "$S" run -- sh -c "$ecmd" sh "$side"
expect_rc 0 "...changed" env LARDER_T_X=3 "$LARDER" --dir "$S" run -- sh -c "$ecmd" sh "$side"
expect_out '^\[2\]$' "a variable not named by --env is not part of the key"

: >"$side"
printf 'a\n' >"$T/ver"
vcmd='echo run >>"$1"; echo result'
vc="cat '$T/ver'"
expect_rc 0 "--version-cmd: fill" L run --version-cmd "$vc" -- sh -c "$vcmd" sh "$side"
expect_rc 0 "--version-cmd same output: hit" L run -v --version-cmd "$vc" -- sh -c "$vcmd" sh "$side"
expect_err "^hit in" "the same version output hits"
printf 'b\n' >"$T/ver"
expect_rc 0 "--version-cmd new output: re-run" L run -v --version-cmd "$vc" -- sh -c "$vcmd" sh "$side"
expect_err "^filled in" "a new version output re-runs the command"
runs_are 2 "--version-cmd: two versions, two runs"
expect_rc 4 "a failing --version-cmd is an I/O error" L run --version-cmd 'echo x; exit 7' -- sh -c "$vcmd" sh "$side"
expect_err "version command .* failed \(exit 7\)" "a failing version command is reported"
runs_are 2 "a failing version command does not run the command"

: >"$side"
acmd='echo run >>"$1"; shift; echo "$@"'
expect_rc 0 "argv ['a b']" L run -- sh -c "$acmd" sh "$side" "a b"
expect_rc 0 "argv ['a', 'b']" L run -- sh -c "$acmd" sh "$side" a b
runs_are 2 "argv ['a b'] and ['a', 'b'] are different keys"

: >"$side"
mkdir "$T/d1" "$T/d2"
(cd "$T/d1" && "$LARDER" --dir "$S" run -- sh -c "$acmd" sh "$side" cwd) >/dev/null 2>&1
(cd "$T/d2" && "$LARDER" --dir "$S" run -- sh -c "$acmd" sh "$side" cwd) >/dev/null 2>&1
runs_are 2 "the working directory is part of the key"
: >"$side"
(cd "$T/d1" && "$LARDER" --dir "$S" run --key k1 -- sh -c "$acmd" sh "$side" one) >/dev/null 2>&1
(cd "$T/d2" && "$LARDER" --dir "$S" run --key k1 -- sh -c "$acmd" sh "$side" two) >"$T/out" 2>/dev/null
runs_are 1 "--key replaces argv and the working directory"
check "--key: the second command got the first one's result" test "$(cat "$T/out")" = one

expect_rc 0 "--ttl 1h" L run --ttl 1h -- echo ttl-marker
L ls >"$T/ls" 2>/dev/null
check "--ttl sets the entry's expiry" sh -c "grep 'ttl-marker' '$T/ls' | awk -F'\t' '\$5 == \"never\" { exit 1 }'"
check "--ttl entry is listed" grep -q ttl-marker "$T/ls"

# --- herd: 8 concurrent runs, one command --------------------------------
# Every process writes to `ready` from its version command, i.e. from
# inside larder run, before its lookup; the filler's command blocks on
# `go` until all 8 have, so the other 7 find its lease and wait.
: >"$side"
fifo "$T/ready"
fifo "$T/go"
exec 4<>"$T/ready" 5<>"$T/go"
hcmd='read x <"$1"; echo run >>"$2"; i=0; while [ $i -lt 2000 ]; do echo "herd line $i"; i=$((i + 1)); done'
i=1
while [ $i -le 8 ]; do
	L run -v --version-cmd "echo r >'$T/ready'; echo v1" -- sh -c "$hcmd" sh "$T/go" "$side" >"$T/h.$i" 2>"$T/h.$i.err" &
	i=$((i + 1))
done
if timeout 30 head -n 8 <&4 >/dev/null; then ok "herd: all 8 started"; else not_ok "herd: not all 8 started"; fi
# One line per possible run, so a second run (a bug) does not hang.
printf 'go\ngo\ngo\ngo\ngo\ngo\ngo\ngo\n' >&5
wait
exec 4>&- 5>&-
runs_are 1 "herd of 8: the command ran exactly once"
same=1
i=1
while [ $i -le 8 ]; do
	cmp -s "$T/h.1" "$T/h.$i" || same=0
	i=$((i + 1))
done
check "herd of 8: all outputs identical" test "$same" -eq 1
check "herd of 8: the output is complete" test "$(lines "$T/h.1")" -eq 2000
check "herd of 8: exactly one filled" test "$(cat "$T"/h.*.err | grep -c '^filled in')" -eq 1
check "herd of 8: the others waited (or hit)" test "$(cat "$T"/h.*.err | grep -Ec '^(waited|hit) in [0-9]+\.[0-9]{3} s \(exit 0\)$')" -eq 7

# --- while another process fills: --allow-stale, --max-wait ------------
# The command blocks (on `go`) only on the run that creates `lockdir`.
: >"$side"
rm -rf "$T/lockdir"
printf '1\n' >"$T/sv"
fifo "$T/ready"
fifo "$T/go"
exec 4<>"$T/ready" 5<>"$T/go"
bcmd='echo run >>"$1"; if [ "$(cat "$2")" = 2 ] && mkdir "$3" 2>/dev/null; then echo s >"$4"; read x <"$5"; fi; echo "result-$(cat "$2")"'
set -- sh -c "$bcmd" sh "$side" "$T/sv" "$T/lockdir" "$T/ready" "$T/go"
svc="cat '$T/sv'"
expect_rc 0 "stale: fill version 1" L run --version-cmd "$svc" -- "$@"
printf '2\n' >"$T/sv"
L run --version-cmd "$svc" -- "$@" >"$T/b.out" 2>"$T/b.err" &
bpid=$!
if timeout 30 head -n 1 <&4 >/dev/null; then ok "a slow filler of version 2 started"; else not_ok "a slow filler of version 2 started"; fi
expect_rc 0 "--allow-stale while another fills" L run -v --allow-stale --version-cmd "$svc" -- "$@"
expect_out "^result-1$" "--allow-stale returns the previous result at once"
expect_err "^stale in [0-9]+\.[0-9]{3} s \(exit 0\)$" "-v says 'stale'"
expect_rc 0 "--max-wait 0.3 while another fills" L run -v --max-wait 0.3 --version-cmd "$svc" -- "$@"
expect_out "^result-2$" "after --max-wait, larder run runs the command itself"
expect_err "^filled in" "-v says 'filled' after --max-wait"
echo go >&5
wait $bpid
check "the slow filler finished" test "$?" -eq 0
check "the slow filler printed version 2" grep -qx result-2 "$T/b.out"
exec 4>&- 5>&-
runs_are 3 "fill 1, slow fill 2, and the impatient run"

# --- a cache that cannot be written --------------------------------------
# The fault shim makes every write into the store's entry files fail with
# ENOSPC: the output still reaches the caller, with a warning.
if [ -n "$LARDER_FAULTSHIM" ] && [ -f "$LARDER_FAULTSHIM" ]; then
	pre=$LARDER_FAULTSHIM
	# A sanitizer build needs its runtime first in LD_PRELOAD.
	asan=$(ldd "$LARDER" 2>/dev/null | awk '/libasan/ { print $3; exit }')
	[ -n "$asan" ] && pre="$asan $pre"
	: >"$side"
	ucmd='echo run >>"$1"; echo not-cacheable; exit 4'
	expect_rc 4 "a full disk: the command's status" env LD_PRELOAD="$pre" \
		LARDER_FAULT_OP=write LARDER_FAULT_NTH=1 LARDER_FAULT_PERSIST=1 \
		LARDER_FAULT_ERRNO=ENOSPC LARDER_FAULT_PATH="$S/ns/default/e/" \
		"$LARDER" --dir "$S" run -v --cache-failures -- env -u LD_PRELOAD sh -c "$ucmd" sh "$side"
	expect_out "^not-cacheable$" "a full disk: the output still reaches the caller"
	expect_err "^larder: warn: .*not cached" "a full disk: a warning says it was not cached"
	expect_err "^uncached in [0-9]+\.[0-9]{3} s \(exit 4; the cache could not keep it\)$" "-v says 'uncached'"
	expect_rc 4 "after a full disk, the next run" L run -v --cache-failures -- env -u LD_PRELOAD sh -c "$ucmd" sh "$side"
	expect_err "^filled in" "nothing was cached on the full disk"
	runs_are 2 "a full disk: the command ran again next time"

	# An input whose first read gives ESTALE, as GlusterFS's lazy open
	# does for a name another client renamed over: the version is
	# computed again, and the run goes on as if nothing happened.
	printf 'stale-input\n' >"$T/stalein"
	: >"$side"
	scmd='echo run >>"$1"; cat "$2"'
	expect_rc 0 "ESTALE reading an input: the run goes on" env LD_PRELOAD="$pre" \
		LARDER_FAULT_OP=read LARDER_FAULT_NTH=1 LARDER_FAULT_ERRNO=ESTALE \
		LARDER_FAULT_PATH="$T/stalein" LARDER_FAULT_REPORT="$T/stale.rep" \
		"$LARDER" --dir "$S" run --input "$T/stalein" -- env -u LD_PRELOAD sh -c "$scmd" sh "$side" "$T/stalein"
	expect_out "^stale-input$" "ESTALE reading an input: the output"
	check "ESTALE reading an input: the fault fired" grep -Eq "^fired read .*errno=(ESTALE|116) " "$T/stale.rep"
	runs_are 1 "ESTALE reading an input: the command ran once"
else
	skip "a cache that cannot be written: LARDER_FAULTSHIM is not set"
fi

# --- a result stored but not read back (ulimit -v) ----------------------
# Under an address-space limit smaller than its output, a fill stores the
# output (streamed, in bounded memory) but cannot map the entry to read it
# back: it must say that, not "not cached". The limit is found by trying:
# the smallest that runs a small command, plus 8 MiB; the output is twice
# the limit. A sanitizer build cannot run under such a limit at all.
if ldd "$LARDER" 2>/dev/null | grep -q libasan; then
	skip "a fill under ulimit -v: a sanitizer build needs more address space"
else
	"$LARDER" --dir "$T/probe" init >/dev/null 2>&1
	base=
	v=16384
	while [ "$v" -le 524288 ]; do
		if (ulimit -v "$v" && "$LARDER" --dir "$T/probe" run -- true) >/dev/null 2>&1; then
			base=$v
			break
		fi
		v=$((v + 4096))
	done
	if [ -z "$base" ]; then
		skip "a fill under ulimit -v: no limit up to 512 MiB runs larder"
	else
		lim=$((base + 8192))
		size=$((lim * 2048))
		: >"$side"
		ucmd='echo run >>"$1"; head -c "$2" /dev/zero'
		expect_rc 0 "a fill under ulimit -v $lim" sh -c 'ulimit -v "$1" && shift && exec "$@"' sh "$lim" \
			"$LARDER" --dir "$S" run -v -- sh -c "$ucmd" sh "$side" "$size"
		check "under ulimit -v: all the output reaches the caller" test "$(wc -c <"$T/out")" -eq "$size"
		if grep -q "not cached" "$T/err"; then
			not_ok "under ulimit -v: the stored result is not called 'not cached'"
		else
			ok "under ulimit -v: the stored result is not called 'not cached'"
		fi
		expect_err "^larder: run: warning: the loaded data was stored, but reading it back failed: .*Cannot allocate memory" "under ulimit -v: the warning says it was stored"
		expect_err "^filled in [0-9]+\.[0-9]{3} s \(exit 0; cached, not read back\)$" "-v says 'filled', cached, not read back"
		expect_rc 0 "without the limit, the same command" L run -v -- sh -c "$ucmd" sh "$side" "$size"
		expect_err "^hit in" "without the limit, the stored result is a hit"
		check "the hit gives all the output" test "$(wc -c <"$T/out")" -eq "$size"
		runs_are 1 "the command ran once"
		rm -f "$T/out"
	fi
fi

# --- errors --------------------------------------------------------------
expect_rc 2 "no '--' before the command" L run echo hi
expect_err "missing '--'" "a missing '--' is explained"
expect_rc 2 "nothing after '--'" L run --
expect_err "missing COMMAND" "a missing command is explained"
expect_rc 2 "no arguments at all" L run
expect_rc 2 "an unknown option" L run --bogus -- echo hi
expect_err "unknown option '--bogus'" "the unknown option is named"
expect_rc 2 "an argument before '--'" L run stray -- echo hi
expect_rc 2 "--env NAME=VALUE is refused" L run --env A=B -- echo hi
expect_rc 2 "--lease 0 is refused" L run --lease 0 -- echo hi
expect_rc 2 "--max-wait x is refused" L run --max-wait x -- echo hi
expect_rc 2 "--ttl 0 is refused" L run --ttl 0 -- echo hi
expect_rc 0 "--lease 5 is accepted" L run --lease 5 -- echo lease
expect_rc 127 "a command that does not exist exits 127" L run -- /nonexistent/cmd-xyz
expect_err "cannot run '/nonexistent/cmd-xyz': No such file or directory" "a missing command is named"
expect_rc 127 "a command not on PATH exits 127" L run -- no-such-command-xyz
printf 'not a program\n' >"$T/noexec"
chmod 0644 "$T/noexec"
expect_rc 126 "a file that cannot be executed exits 126" L run -- "$T/noexec"
expect_rc 3 "no store is a store problem" "$LARDER" --dir "$T/nostore" run -- echo hi
# An entry stored under the documented encoding (docs/cli.md, "What is
# stored, byte by byte") is a hit: results made before the key moved into
# the library (larder_run_key) are still found. Key, version and payload
# are written here by hand, byte for byte.
mkdir "$T/old" && cd "$T/old" || exit 2
cwd=$(pwd -P)
key=$(printf 'larder-run/2\nd%d:%s\na4:echo\na3:old\ne6:OLD_X=\n' "${#cwd}" "$cwd"; echo x)
key=${key%x}
ver=$(printf 'larder-run/2\nx')
ver=${ver%x}
printf 'kept by hand\nLRUNEXIT\000\000\000\000\000\000\000\000' >"$T/old.payload"
expect_rc 0 "an entry put under the documented key" L put --version "$ver" -- "$key" "$T/old.payload"
expect_rc 0 "larder run finds it" env OLD_X= "$LARDER" --dir "$S" run -v --env OLD_X -- echo old
expect_out "^kept by hand$" "... and prints the kept output, not the command's"
expect_err "^hit in " "... as a hit"
cd "$T" || exit 2

expect_rc 0 "--help" L run --help
expect_out "Example" "--help shows an example"
expect_out "--version-cmd" "--help explains --version-cmd"
expect_rc 0 "help run" "$LARDER" help run

finish
