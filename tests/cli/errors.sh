#!/bin/sh
# Every exit code, bad command lines, store problems, help, and where the
# store is looked for.
. "$(dirname "$0")/lib.sh" "$1"

printf 'data' >"$T/p"

# 3: store problems.
expect_rc 3 "get with no store at DIR" L get k
expect_err "^larder: get: .*'$S'.*init" "the message names the command and the path, and says how to fix it"
expect_rc 3 "put with no store at DIR" L put k "$T/p"
expect_rc 3 "ls with no store" L ls
expect_rc 3 "verify with no store" L verify
check "a failed open does not create the store" test ! -e "$S"
mkdir "$T/notastore"
echo hello >"$T/notastore/file"
expect_rc 3 "a non-empty directory that is not a store" "$LARDER" --dir "$T/notastore" get k
expect_err "$T/notastore" "the message names the directory"
expect_rc 3 "init refuses a non-empty directory that is not a store" "$LARDER" --dir "$T/notastore" init
expect_rc 3 "a store path that is a file" "$LARDER" --dir "$T/p" get k

expect_rc 0 "init" L init --mode public # others read it below, whatever the umask
chmod o+w "$S"
expect_rc 3 "a store writable by others is refused" L get k
expect_err "^larder: get: " "unsafe mode message has the command prefix"
expect_rc 1 "--allow-unsafe-mode opens it anyway (then a plain miss)" L --allow-unsafe-mode get k
chmod o-w "$S"
if grep -q '^format 1$' "$S/larder-store" 2>/dev/null; then
	cp "$S/larder-store" "$T/format.saved"
	sed 's/^format 1$/format 99/' "$T/format.saved" >"$S/larder-store"
	expect_rc 3 "a store of a newer format" L get k
	cp "$T/format.saved" "$S/larder-store"
else
	not_ok "the store's marker says 'format 1' (the newer-format check needs it)"
fi
if [ "$(id -u)" != 0 ]; then
	chmod 000 "$S"
	expect_rc 3 "permission denied on the store" L get k
	chmod 755 "$S"
elif command -v setpriv >/dev/null 2>&1; then
	# As root, take another user's view with setpriv.
	nobody() {
		setpriv --reuid=65534 --regid=65534 --clear-groups "$LARDER" --dir "$S" "$@"
	}
	chmod 700 "$T"
	expect_rc 3 "permission denied reaching the store" nobody get k
	expect_err "Permission denied" "the message gives the cause"
	chmod 711 "$T"
	L put k "$T/p" --version root
	expect_rc 0 "another user may read a 0644 store" nobody get k
	expect_rc 3 "another user may not write to it" nobody put k2 /dev/null
	expect_err "^larder: put: .*Permission denied" "the message gives the cause"
	chmod 700 "$T"
else
	skip "permission errors as another user: no setpriv(1)"
fi

# 0 and 1.
expect_rc 0 "put" L put k "$T/p"
expect_rc 0 "get" L get k
expect_rc 1 "get of a missing key" L get nosuch
expect_err "^larder: get: 'nosuch': not found$" "miss message"
expect_rc 1 "rm of a missing key" L rm nosuch
expect_rc 1 "inspect of a missing key" L inspect nosuch

# 4: I/O errors.
if [ -w /dev/full ]; then
	expect_rc 4 "get to a full disk (/dev/full)" sh -c '"$1" --dir "$2" get k >/dev/full' sh "$LARDER" "$S"
	expect_err "No space left" "the message gives the cause"
else
	skip "a full disk: /dev/full cannot be written here"
fi
expect_rc 4 "get -o into a missing directory" L get k -o "$T/nodir/out"
expect_err "$T/nodir/out" "the message names the path"
expect_rc 4 "put of a missing file" L put k2 "$T/nosuchfile"
expect_err "cannot open '$T/nosuchfile': No such file" "the message names the file and the cause"
expect_rc 4 "put of a directory" L put k2 "$T"
expect_rc 1 "a failed put stores nothing" L get k2

# 5 is covered in verify.sh; one here so this file checks every code.
L put c "$T/p"
run L inspect c
path=$(json_get "$T/out" 'j["path"]')
python3 -c 'import sys; f=open(sys.argv[1],"r+b"); f.seek(-1,2); b=f.read(1); f.seek(-1,2); f.write(bytes([b[0]^1]))' "$path"
expect_rc 5 "verify with a corrupt entry" L verify

# 2: usage errors.
expect_rc 2 "no command" "$LARDER"
expect_err "usage: larder" "no command prints the usage"
expect_rc 2 "unknown command" L frobnicate
expect_err "^larder: unknown command 'frobnicate'" "unknown command message"
expect_rc 2 "unknown global option" "$LARDER" --frob get k
expect_err "unknown option '--frob'" "unknown global option message"
expect_rc 2 "unknown command option" L get k --frob
expect_err "^larder: get: unknown option '--frob'" "unknown command option message"
expect_rc 2 "unknown short option" L get k -z
expect_err "unknown option '-z'" "unknown short option message"
expect_rc 2 "missing option argument" L get k --version
expect_err "option '--version' needs an argument" "missing option argument message"
expect_rc 2 "missing --dir argument" "$LARDER" --dir
for cmd in get put rm inspect; do
	expect_rc 2 "$cmd without KEY" L $cmd
	expect_err "^larder: $cmd: missing KEY" "$cmd without KEY message"
done
expect_rc 2 "too many arguments to get" L get a b
expect_err "unexpected argument 'b'" "extra argument message"
expect_rc 2 "too many arguments to put" L put a "$T/p" c
expect_rc 2 "an argument to ls" L ls extra
expect_rc 2 "bad --ttl" L put k "$T/p" --ttl soon
expect_err "bad --ttl 'soon'" "bad --ttl message"
expect_rc 2 "bad init --mode" L init --mode 0777
expect_rc 2 "bad init --fsync" L init --fsync always
expect_rc 2 "help for an unknown command" "$LARDER" help frobnicate
expect_rc 2 "a command's option before the command name is unknown" "$LARDER" --dir "$S" --verify verify

# Help.
expect_rc 0 "--help" "$LARDER" --help
expect_out "^usage: larder" "--help prints the usage"
expect_out "Exit codes" "--help documents the exit codes"
expect_out "^  5  verify found problems" "--help lists exit code 5"
expect_rc 0 "-h" "$LARDER" -h
expect_rc 0 "help" "$LARDER" help
expect_out "^usage: larder" "help prints the usage"
expect_rc 0 "--version" "$LARDER" --version
expect_out "^larder [0-9]+\.[0-9]+\.[0-9]+" "--version prints the version"
for cmd in init put get rm ls inspect verify; do
	expect_rc 0 "$cmd --help" "$LARDER" $cmd --help
	expect_out "^usage: larder $cmd" "$cmd --help prints its usage"
	expect_rc 0 "$cmd -h" "$LARDER" $cmd -h
	expect_rc 0 "help $cmd" "$LARDER" help $cmd
	expect_out "^usage: larder $cmd" "help $cmd prints its usage"
done
expect_rc 0 "--help wins over missing arguments" L put --help
check "help goes to stdout, not stderr" test ! -s "$T/err"

# Where the store is: --dir, then LARDER_DIR, XDG_CACHE_HOME, HOME.
mkdir -p "$T/home" "$T/xdg"
expect_rc 0 "LARDER_DIR names the store" env LARDER_DIR="$S" "$LARDER" get k
expect_rc 0 "--dir wins over LARDER_DIR" env LARDER_DIR="$T/elsewhere" "$LARDER" --dir "$S" get k
expect_rc 0 "init under XDG_CACHE_HOME" env HOME="$T/home" XDG_CACHE_HOME="$T/xdg" "$LARDER" init
check "XDG_CACHE_HOME/larder is used" test -e "$T/xdg/larder/larder-store" -a ! -e "$T/home/.cache/larder"
expect_rc 0 "init under HOME" env HOME="$T/home" "$LARDER" init
check "HOME/.cache/larder is used without XDG_CACHE_HOME" test -e "$T/home/.cache/larder/larder-store"
expect_rc 2 "no HOME, no LARDER_DIR: usage error" env -u HOME "$LARDER" get k
expect_err "no store directory" "no directory message"

# Global options after the command name.
expect_rc 0 "--dir after the command" "$LARDER" get k --dir "$S"
expect_rc 0 "options after arguments even with POSIXLY_CORRECT" env POSIXLY_CORRECT=1 "$LARDER" get k --dir "$S"
expect_rc 0 "--ns after the command" "$LARDER" put k "$T/p" --dir "$S" --ns n2 --version 1
expect_rc 0 "--ns before the command" "$LARDER" --ns n2 --dir "$S" get k
expect_rc 0 "a key that starts with '-' after --" L put -- -dash "$T/p"
expect_rc 0 "get it back" L get -- -dash

finish
