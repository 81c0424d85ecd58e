# Sourced by scripts that run /usr/bin/python3 against a build's binding:
# under the sanitizer build the extension (and the library in it) is
# instrumented but the interpreter is not, so the compiler's ASan and
# UBSan runtimes are preloaded. Leak detection is off: CPython does not
# free everything at exit, and those reports would not be ours.
# sanitized_python SANITIZED(ON|OFF) CC: 0 when the interpreter can load
# the binding (LD_PRELOAD and ASAN_OPTIONS exported under ON); 1 with the
# reason in $sanitized_why when the runtimes cannot be found.
sanitized_python() {
	sanitized_why=
	[ "$1" = ON ] || return 0
	_asan=$("$2" -print-file-name=libasan.so)
	_ubsan=$("$2" -print-file-name=libubsan.so)
	case "$_asan$_ubsan" in /*/*) ;; *) _asan= ;; esac
	if [ ! -f "$_asan" ] || [ ! -f "$_ubsan" ]; then
		sanitized_why="no ASan/UBSan runtime from $2 to preload into the interpreter"
		return 1
	fi
	export LD_PRELOAD="$_asan $_ubsan${LD_PRELOAD:+ $LD_PRELOAD}"
	export ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
}
