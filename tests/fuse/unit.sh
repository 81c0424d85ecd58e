#!/bin/sh
# The systemd unit docs/fuse.md shows, as a new user would copy it: with
# the larder under test in place of /usr/local/bin/larder, systemd-analyze
# verify finds nothing to say about it, and each option its commands pass
# is one `larder mount` and `larder umount` know.
. "$(dirname "$0")/lib.sh" "$1"

command -v systemd-analyze >/dev/null 2>&1 ||
	skip_all "no systemd-analyze here: the unit cannot be verified"
doc=$(dirname "$0")/../../docs/fuse.md
[ -f "$doc" ] || bail "no $doc"
unit=$T/larder-mount.service
exe=$(cd "$(dirname "$LARDER")" && pwd)/$(basename "$LARDER")
awk '/^```ini$/ { f = 1; next } /^```$/ { f = 0 } f' "$doc" |
	sed "s#/usr/local/bin/larder#$exe#g" >"$unit"
grep -q '^ExecStart=' "$unit" || bail "no unit with an ExecStart in $doc"
run systemd-analyze verify "$unit"
[ "$rc" -eq 0 ] && [ ! -s "$T/out" ] && [ ! -s "$T/err" ] &&
	ok "systemd-analyze verify: the unit is sound" ||
	not_ok "systemd-analyze verify: exit $rc: $(cat "$T/out" "$T/err")"
# Its commands' options, against each command's usage.
grep '^Exec[A-Za-z]*=' "$unit" | sed 's/^[^=]*=-\{0,1\}//' |
	while read -r exe cmd args; do
		"$exe" help "$cmd" >"$T/usage" 2>&1 || {
			echo "$cmd: no usage"
			continue
		}
		for a in $args; do
			case $a in
			-*) grep -q -- "$a" "$T/usage" || echo "$cmd $a: unknown" ;;
			esac
		done
	done >"$T/opts"
[ ! -s "$T/opts" ] && ok "every option in the unit's commands exists" ||
	not_ok "options: $(cat "$T/opts")"
finish
