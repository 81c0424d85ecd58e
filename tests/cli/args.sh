#!/bin/sh
# Values a careless user types: seconds are plain decimals at least the
# documented minimum (a lease of 1e-9 s lost single flight), and a closed
# stdin is named as such.
. "$(dirname "$0")/lib.sh" "$1"

L init >/dev/null 2>&1 || bail "cannot init"

# --- --lease and --max-wait -------------------------------------------------
# ran: the command of a `run` below leaves a mark when it runs.
ran() { test -e "$T/ran"; }

for v in 1e-9 0x10 1e3 inf nan -1 +5 ' 5' '5 ' .5 5. 0.5 0.999 0 1x 1.5.2 3601 1.1h 1d 367d ''; do
	rm -f "$T/ran"
	expect_rc 2 "run --lease '$v' is refused" L run --lease "$v" -- touch "$T/ran"
	check "... and nothing ran" sh -c '! test -e "$1"' sh "$T/ran"
	expect_err "bad --lease" "... and the message says which option"
done
expect_err "from 1 to 3600" "the message gives the range"
for v in 1 2.5 30s 1.5m 1h 3600; do
	expect_rc 0 "run --lease '$v' is accepted" L run --lease "$v" -- echo "$v"
done

for v in 1e-9 0x10 inf nan -1 0 0.0001 1e2; do
	expect_rc 2 "run --max-wait '$v' is refused" L run --max-wait "$v" -- echo x
	expect_err "bad --max-wait" "... and the message says which option"
done
for v in 0.001 0.5 2 1m 366d; do
	expect_rc 0 "run --max-wait '$v' is accepted" L run --max-wait "$v" -- echo "$v"
done

# run finds its "--" knowing every global option: one that takes an
# argument ("--ns --", "--log-level warn") is not mistaken for the end of
# larder's options, nor its argument for the COMMAND.
expect_rc 0 "run takes global options with arguments before --" \
	L run --ns g1 --log-level warn -v -- echo global
expect_out "^global$" "... and runs the COMMAND after --"
expect_rc 0 "run --ns -- names a namespace '--'" L run --ns -- -- echo dashes
expect_out "^dashes$" "... and runs the COMMAND after the second --"
expect_rc 2 "run --ns -- with no other -- is a usage error" L run --ns -- echo x
expect_err "option '--ns' needs an argument" "... and says what is missing"

# sql parses its options before it looks at the database.
for v in 1e-9 0x10 0.5 inf; do
	expect_rc 2 "sql --lease '$v' is refused" L sql --db "$T/none.db" --ttl 1h --lease "$v" "SELECT 1"
	expect_err "bad --lease" "... and the message says which option"
done
expect_rc 2 "sql --max-wait 1e-9 is refused" L sql --db "$T/none.db" --ttl 1h --max-wait 1e-9 "SELECT 1"

# --- every duration option, one parser, one message shape -------------------
# Each command that takes a duration refuses a bad one before it touches
# anything, with "bad --OPT 'VALUE' (want seconds from MIN to MAX: ...)".
shape="\\(want seconds from [0-9.]+d? to [0-9.]+d?: a (whole number|plain decimal) like 30"
for cmd in "put k $T/none --ttl" "run --ttl" "run --lease" "run --max-wait" \
	"sql --db $T/none.db --ttl" "sql --db $T/none.db --ttl 1h --lease" \
	"sql --db $T/none.db --ttl 1h --max-wait" "config --ns x --ttl" \
	"config --touch-interval"; do
	opt=${cmd##* }
	for v in 1e3 0x10 -1 +5 ' 5' 1x inf ''; do
		# shellcheck disable=SC2086
		expect_rc 2 "$cmd '$v' is refused" L $cmd "$v" -- echo x
		expect_err "bad $opt '[^']*' $shape" "... with the one message shape"
	done
done
# Whole seconds where the library keeps whole seconds (TTL, touch).
expect_rc 2 "put --ttl 1.5 is refused" L put k "$T/none" --ttl 1.5
expect_err "bad --ttl '1.5' \(want seconds from 1 to 36500d: a whole number" "... as not whole"
expect_rc 2 "config --touch-interval 36501d is refused" L config --touch-interval 36501d
expect_err "from 0 to 36500d" "... and the message gives the range"
expect_rc 0 "config --touch-interval 2m is accepted" L config --touch-interval 2m
run L config
expect_out "^touch_interval 120$" "... and means 120 s"
expect_rc 0 "config --touch-interval 0 is accepted" L config --touch-interval 0
run L config
expect_out "^touch_interval 0$" "... and means every hit"
expect_rc 0 "config --ns x --ttl 0s means none" L config --ns x --ttl 0s
expect_rc 0 "config --ns x --ttl 1d is accepted" L config --ns x --ttl 1d
run L config --ns x
expect_out "^ttl 86400$" "... and means 86400 s"
expect_rc 0 "config --ns x --ttl never means none" L config --ns x --ttl never
run L config --ns x
expect_out "^ttl 0 \(none\)$" "... and is shown as none"

# --- a closed stdin ----------------------------------------------------------
expect_rc 4 "put KEY - with stdin closed" L put k - <&-
expect_err "^larder: put: no input: standard input is closed$" "... says stdin is closed"
check "... and nothing else" test "$(wc -l <"$T/err")" -eq 1
expect_rc 4 "put KEY (stdin by default) with stdin closed" L put k <&-
expect_err "no input: standard input is closed" "... says stdin is closed"
expect_rc 1 "nothing was stored" L get k
printf 'x' | L put k2
run sh -c '"$@" >&-' sh "$LARDER" --dir "$S" get k2
check "get with stdout closed fails (exit 4)" test "$rc" -eq 4
expect_err "cannot write to stdout: Bad file descriptor" "... as a write to a closed stdout"
expect_rc 0 "the store is sound afterwards" L verify

finish
