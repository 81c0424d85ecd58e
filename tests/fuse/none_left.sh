#!/bin/sh
# The suite's last test: no larder mount is left behind by the others.
. "$(dirname "$0")/../checks.sh"
if grep -q ' fuse\.larder ' /proc/self/mounts; then
	not_ok "larder mounts left behind: $(grep ' fuse\.larder ' /proc/self/mounts)"
else
	ok "no larder mount is left in /proc/self/mounts"
fi
summary
[ "$fail" -eq 0 ]
