#!/bin/sh
# Many `larder init` processes on one new directory at once (a pool of
# workers, each making sure of its cache on start): every one succeeds,
# then puts and gets back its own entry, and the store is what one init
# makes. Processes start together: each blocks reading one line from a
# FIFO until the script writes one line for every process. Rounds repeat
# the race, since one round may happen not to interleave.
. "$(dirname "$0")/lib.sh" "$1"

N=16
ROUNDS=20

mkfifo "$T/go" || bail "cannot make a FIFO in $T"
# Read-write: opening does not wait for a reader, and the FIFO stays
# open for the processes that have not reached their read yet.
exec 3<>"$T/go"

# worker DIR I: init, put and get back entry I; exit 0 only if all do.
worker() {
	read -r _ <&3
	exec 3<&-
	printf 'payload of %s\n' "$2" >"$T/in.$2"
	"$LARDER" --dir "$1" init >/dev/null 2>"$T/err.$2" &&
		"$LARDER" --dir "$1" put "key-$2" "$T/in.$2" 2>>"$T/err.$2" &&
		"$LARDER" --dir "$1" get "key-$2" >"$T/out.$2" 2>>"$T/err.$2" &&
		cmp -s "$T/in.$2" "$T/out.$2"
}

# race DIR [MODE...]: N workers at once on DIR; sets $failed (how many
# failed) and $T/errs (their stderr).
race() {
	pids=
	i=0
	while [ "$i" -lt "$N" ]; do
		worker "$1" "$i" &
		pids="$pids $!"
		track "$!"
		i=$((i + 1))
	done
	i=0
	lines=
	while [ "$i" -lt "$N" ]; do
		lines="$lines
"
		i=$((i + 1))
	done
	printf '%s' "$lines" >&3
	failed=0
	for p in $pids; do
		wait "$p" || failed=$((failed + 1))
	done
	cat "$T"/err.* >"$T/errs" 2>/dev/null
}

# The top of a store one init makes, and its entries after N puts.
"$LARDER" --dir "$T/ref" init >/dev/null 2>"$T/err" || bail "init of a store"
i=0
while [ "$i" -lt "$N" ]; do
	printf 'payload of %s\n' "$i" >"$T/in"
	"$LARDER" --dir "$T/ref" put "key-$i" "$T/in" 2>"$T/err" ||
		bail "put into the reference store"
	i=$((i + 1))
done
want_top=$(cd "$T/ref" && ls -A | tr '\n' ' ')
want_files=$(cd "$T/ref/ns" && find . -type f | wc -l)

bad_rounds=0
bad_stores=0
r=0
while [ "$r" -lt "$ROUNDS" ]; do
	rm -f "$T"/err.*
	d=$T/new-$r
	# Odd rounds: the directory is there and empty; even ones: init
	# makes it.
	[ $((r % 2)) -eq 1 ] && mkdir "$d"
	race "$d"
	if [ "$failed" -ne 0 ]; then
		bad_rounds=$((bad_rounds + 1))
		[ "$bad_rounds" -eq 1 ] && cp "$T/errs" "$T/first-errs"
	fi
	top=$(cd "$d" && ls -A | tr '\n' ' ')
	files=$(cd "$d/ns" 2>/dev/null && find . -type f | wc -l)
	tmps=$(find "$d" -name '.tmp.*' | wc -l)
	if [ "$top" != "$want_top" ] || [ "$files" != "$want_files" ] ||
		[ "$tmps" -ne 0 ] || ! cmp -s "$d/larder-store" "$T/ref/larder-store"; then
		bad_stores=$((bad_stores + 1))
		echo "    round $r: top '$top', $files files under ns/, $tmps temp files"
	fi
	r=$((r + 1))
done
if [ "$bad_rounds" -eq 0 ]; then
	ok "$ROUNDS rounds of $N inits at once on one new directory: all succeed, and put and get"
else
	cp "$T/first-errs" "$T/err"
	not_ok "in $bad_rounds of $ROUNDS rounds of $N inits at once, some failed"
fi
check "each store is what one init makes: '$want_top', $want_files files under ns/, no temp file ($bad_stores rounds differ)" \
	test "$bad_stores" -eq 0

# Inits asking for different modes: the first to commit the store
# decides, and an init whose mode lost fails as on an existing store.
d=$T/modes
mkdir "$d"
pids=
i=0
while [ "$i" -lt "$N" ]; do
	if [ $((i % 2)) -eq 0 ]; then m=0600; else m=0640; fi
	sh -c 'read -r _ <&3; exec 3<&-; exec "$1" --dir "$2" init --mode "$3"' \
		sh "$LARDER" "$d" "$m" >/dev/null 2>"$T/err.m$i" &
	pids="$pids $!"
	track "$!"
	i=$((i + 1))
done
printf '\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n' >&3
statuses=
for p in $pids; do
	wait "$p"
	statuses="$statuses $?"
done
won=$(sed -n 's/^mode //p' "$d/larder-store" 2>/dev/null)
# The exit statuses, by the mode each asked for.
i=0
right=0
for st in $statuses; do
	if [ $((i % 2)) -eq 0 ]; then m=0600; else m=0640; fi
	if [ "$m" = "$won" ] && [ "$st" -eq 0 ]; then
		right=$((right + 1))
	elif [ "$m" != "$won" ] && [ "$st" -eq 3 ] &&
		grep -q "exists with mode $won" "$T/err.m$i"; then
		right=$((right + 1))
	fi
	i=$((i + 1))
done
check "inits racing with modes 0600 and 0640: the store has one ($won), inits that asked for it succeed, the others fail naming it ($right of $N right)" \
	test "$right" -eq "$N"

finish
