# lib_e2e.sh - helpers the end-to-end scripts (tests/e2e_*.sh) source. POSIX sh.
# Not a test itself (its name does not match tests/e2e_*.sh).
#
#   . "$(dirname "$0")/lib_e2e.sh"
#   e2e_init e2e_name          # sets ROOT, L (absolute loupe), PLUGINS, T (temp dir), cd ROOT
#   run "$L" train ...         # runs, keeping $T/out, $T/err and $RC
#   expect_rc 2 "what"         # one line per check: "ok - what" or "FAIL - what ..."
#   expect_err 'text' "what"   # fixed string in stderr (grep -F)
#   expect_out 'text' "what"   # fixed string in stdout
#   check "what" test-command  # passes when the command succeeds
#   todo_skip "what" "why"     # a documented known bug: printed, not counted
#   e2e_finish                 # "NAME: N passed, M failed"; exit status 1 if M > 0
#
# LOUPE_BIN and LOUPE_BUILD come from `make test` (relative to the directory make
# runs in, the repository root); defaults: bin/loupe and build.

e2e_init() {
    E2E_NAME=$1
    E2E_PASS=0
    E2E_FAIL=0
    E2E_SKIP=0
    ROOT=$(cd "$(dirname "$0")/.." && pwd)
    LOUPE_BIN=${LOUPE_BIN:-bin/loupe}
    LOUPE_BUILD=${LOUPE_BUILD:-build}
    case $LOUPE_BIN in /*) L=$LOUPE_BIN ;; *) L=$(pwd)/$LOUPE_BIN ;; esac
    case $LOUPE_BUILD in /*) B=$LOUPE_BUILD ;; *) B=$(pwd)/$LOUPE_BUILD ;; esac
    PLUGINS=$B/plugins
    if [ ! -x "$L" ]; then
        echo "$E2E_NAME: no loupe binary at $L (set LOUPE_BIN)" >&2
        echo "$E2E_NAME: 0 passed, 1 failed"
        exit 1
    fi
    T=$(mktemp -d "${TMPDIR:-/tmp}/loupe-$E2E_NAME.XXXXXX")
    # shellcheck disable=SC2064
    trap "e2e_cleanup; rm -rf '$T'" EXIT
    trap 'exit 130' INT TERM
    cd "$ROOT" || exit 1
    MNIST=$ROOT/data/mnist
    RC=0
}

# Background processes a script started and must not leave behind.
E2E_PIDS=
e2e_cleanup() {
    for p in $E2E_PIDS; do kill -9 "$p" 2>/dev/null; done
}

ok() {
    E2E_PASS=$((E2E_PASS + 1))
    echo "ok - $1"
}

bad() {
    E2E_FAIL=$((E2E_FAIL + 1))
    echo "FAIL - $1"
    shift
    for line in "$@"; do echo "     $line"; done
}

# Show what the last `run` printed (for a failure).
last_output() {
    echo "     exit status $RC; stdout:"
    sed -n '1,15s/^/       | /p' "$T/out"
    echo "     stderr:"
    sed -n '1,15s/^/       | /p' "$T/err"
}

run() {
    "$@" >"$T/out" 2>"$T/err"
    RC=$?
}

expect_rc() {
    if [ "$RC" -eq "$1" ]; then ok "$2 (exit $1)"; else bad "$2: expected exit $1, got $RC"; last_output; fi
}

expect_err() {
    if grep -qF -- "$1" "$T/err"; then ok "$2"; else bad "$2: stderr lacks '$1'"; last_output; fi
}

expect_out() {
    if grep -qF -- "$1" "$T/out"; then ok "$2"; else bad "$2: stdout lacks '$1'"; last_output; fi
}

check() {
    what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what" "failed: $*"; fi
}

# Equal strings, showing both on failure.
check_eq() {
    if [ "$2" = "$3" ]; then ok "$1 ($2)"; else bad "$1: expected '$3', got '$2'"; fi
}

# awk-evaluated numeric condition on a and b, e.g. check_num "acc" "$acc" '>=' 0.9
check_num() {
    if awk -v a="$2" -v b="$4" "BEGIN { exit !(a != \"\" && (a + 0) $3 (b + 0)) }"; then
        ok "$1 ($2 $3 $4)"
    else
        bad "$1: expected $2 $3 $4"
    fi
}

todo_skip() {
    E2E_SKIP=$((E2E_SKIP + 1))
    echo "SKIP - TODO: $1 ($2)"
}

# Value of a numeric or string field in a one-line JSON object (flat keys only).
json_field() {
    sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p" "$2" | head -n 1
}

# Random integer in [0, n) from /dev/urandom.
rand_below() {
    r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
    echo $((r % $1))
}

e2e_finish() {
    if [ "$E2E_SKIP" -gt 0 ]; then echo "($E2E_SKIP check(s) skipped as known bugs: see the SKIP lines)"; fi
    echo "$E2E_NAME: $E2E_PASS passed, $E2E_FAIL failed"
    [ "$E2E_FAIL" -eq 0 ]
    exit $?
}
