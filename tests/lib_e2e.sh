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
#   sq "SQL"; sq "$CONSISTENT" # sqlite3 on $DB; the crash-consistency query (0|0|0|0)
#   sq "$EVAL_CONSISTENT"      # and the evaluations' (0|0)
#   wait_for_run "id = 3 AND epochs_done >= 2" 600; sleep_ms 250
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

# Background processes a script started and must not leave behind, and mounts.
E2E_PIDS=
E2E_MOUNTS=
e2e_cleanup() {
    for p in $E2E_PIDS; do kill -9 "$p" 2>/dev/null; done
    for m in $E2E_MOUNTS; do umount "$m" 2>/dev/null; done
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

# ---- runs databases ($DB) ----

# sqlite3 on $DB, waiting up to 5 s for a writer's lock.
sq() { sqlite3 -cmd '.timeout 5000' "$DB" "$1"; }

# consistent_sql CONDITION: SQL that prints 0|0|0|0 when, for the runs matching
# CONDITION (on runs), every committed epoch has its 7 metrics and its checkpoint,
# nothing else is there, and runs.epochs_done says how many (for runs that checkpoint
# every epoch). $CONSISTENT is the same for every run.
consistent_sql() {
    echo "WITH v AS (SELECT id FROM runs WHERE $1),
  m AS (SELECT run_id, epoch FROM metrics WHERE run_id IN v),
  c AS (SELECT run_id, epoch FROM checkpoints WHERE run_id IN v)
SELECT
  (SELECT count(*) FROM (SELECT run_id, epoch FROM m GROUP BY run_id, epoch EXCEPT SELECT run_id, epoch FROM c)),
  (SELECT count(*) FROM (SELECT run_id, epoch FROM c EXCEPT SELECT run_id, epoch FROM m)),
  (SELECT count(*) FROM (SELECT run_id, epoch FROM m GROUP BY run_id, epoch HAVING count(*) != 7)),
  (SELECT count(*) FROM runs r WHERE r.id IN v AND (r.epochs_done !=
       (SELECT count(DISTINCT epoch) FROM m WHERE m.run_id = r.id)
    OR r.epochs_done != COALESCE((SELECT max(epoch) FROM m WHERE m.run_id = r.id), 0)))"
}
CONSISTENT=$(consistent_sql 1)

# $EVAL_CONSISTENT prints 0|0 when no evaluation row (confusion, class_metrics,
# misclassified) belongs to an epoch without a test accuracy, and every epoch with one
# has its whole evaluation: k class rows, k x k cells, one misclassified row per image
# off the diagonal (the epoch commit writes them all in its transaction).
EVAL_CONSISTENT="WITH m AS (SELECT DISTINCT run_id, epoch FROM metrics WHERE split = 'test' AND name = 'acc'),
  e AS (SELECT run_id, epoch FROM confusion UNION SELECT run_id, epoch FROM class_metrics
        UNION SELECT run_id, epoch FROM misclassified),
  k AS (SELECT m.run_id, m.epoch, (SELECT count(*) FROM class_metrics c WHERE c.run_id = m.run_id
        AND c.epoch = m.epoch AND c.split = 'test') AS n FROM m)
SELECT (SELECT count(*) FROM (SELECT run_id, epoch FROM e EXCEPT SELECT run_id, epoch FROM m)),
  (SELECT count(*) FROM k WHERE n = 0
    OR (SELECT count(*) FROM confusion c WHERE c.run_id = k.run_id AND c.epoch = k.epoch) != n * n
    OR (SELECT count(*) FROM misclassified x WHERE x.run_id = k.run_id AND x.epoch = k.epoch) !=
       (SELECT sum(count) FROM confusion c WHERE c.run_id = k.run_id AND c.epoch = k.epoch AND true_label <> pred_label))"

# wait_for_run SQL-CONDITION POLLS: until exactly one run matches, polling every
# 0.05 s; false after POLLS polls.
wait_for_run() {
    n=0
    while [ "$(sq "SELECT count(*) FROM runs WHERE $1" 2>/dev/null)" != 1 ]; do
        n=$((n + 1))
        [ $n -gt "$2" ] && return 1
        sleep 0.05
    done
}

# sleep_ms MS
sleep_ms() { sleep "$(($1 / 1000)).$(printf '%03d' $(($1 % 1000)))"; }

e2e_finish() {
    if [ "$E2E_SKIP" -gt 0 ]; then echo "($E2E_SKIP check(s) skipped as known bugs: see the SKIP lines)"; fi
    echo "$E2E_NAME: $E2E_PASS passed, $E2E_FAIL failed"
    [ "$E2E_FAIL" -eq 0 ]
    exit $?
}
