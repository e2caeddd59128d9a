#!/bin/sh
# e2e_concurrency.sh - several `loupe train` processes on one runs database at
# once: all complete, none sees "database is locked", every epoch of every run is
# recorded, and readers (`loupe runs list`) work meanwhile. Twice: three writers
# racing to create a fresh database (schema creation), then three more on it.
#
#   LOUPE_BIN=bin/loupe LOUPE_BUILD=build sh tests/e2e_concurrency.sh
. "$(dirname "$0")/lib_e2e.sh"
e2e_init e2e_concurrency
DB=$T/shared.db
EPOCHS=4

# train_three ROUND: three different runs started together; waits for them.
train_three() {
    pids=
    for k in 1 2 3; do
        case $k in
        1) cfg=configs/mnist_two_conv.yaml ;;
        2) cfg=configs/mnist_dense.yaml ;;
        3) cfg=configs/mnist_one_conv.yaml ;;
        esac
        "$L" train $cfg --set data.train_limit=960 --set data.test_limit=500 --set train.epochs=$EPOCHS \
            --set train.seed=$((10 * $1 + k)) --set tracking.checkpoint_every=1 --db "$DB" --threads 1 \
            --quiet --json >"$T/out.$1.$k" 2>"$T/err.$1.$k" &
        pids="$pids $!"
    done
    E2E_PIDS="$E2E_PIDS $pids"
    # A reader polling all along: listing must never fail or block for long.
    reads=0
    read_fail=0
    while :; do
        alive=0
        for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive -eq 1 ] || break
        if [ -e "$DB" ]; then
            if "$L" runs list --db "$DB" >"$T/list" 2>"$T/list.err"; then
                reads=$((reads + 1))
            elif ! grep -q "does not exist\|no loupe schema" "$T/list.err"; then
                read_fail=$((read_fail + 1))   # (the file may exist before its schema does)
                cp "$T/list.err" "$T/list.err.kept"
            fi
        fi
        sleep 0.1
    done
    k=1
    for p in $pids; do
        wait "$p"
        rc=$?
        check_eq "round $1: writer $k exits 0" "$rc" 0
        check_eq "round $1: writer $k completed" "$(json_field status "$T/out.$1.$k")" completed
        id=$(json_field run_id "$T/out.$1.$k")
        check_eq "round $1: writer $k's run $id has its own seed and $EPOCHS epochs of metrics" \
            "$(sq "SELECT (SELECT value FROM run_params WHERE run_id = $id AND key = 'train.seed') || ' ' ||
                   (SELECT count(*) FROM metrics WHERE run_id = $id)")" "$((10 * $1 + k)) $((7 * EPOCHS))"
        if grep -qi "locked\|busy" "$T/err.$1.$k"; then
            bad "round $1: writer $k saw a lock error" "$(cat "$T/err.$1.$k")"
        else
            ok "round $1: writer $k saw no 'database is locked'"
        fi
        k=$((k + 1))
    done
    check_num "round $1: runs list worked while they trained (reads)" "$reads" '>=' 1
    if [ "$read_fail" -eq 0 ]; then ok "round $1: no read failed"; else bad "round $1: $read_fail reads failed" "$(cat "$T/list.err.kept")"; fi
}

train_three 1
check_eq "round 1: three runs recorded" "$(sq 'SELECT count(*) FROM runs')" 3
train_three 2
check_eq "round 2: six runs recorded" "$(sq 'SELECT count(*) FROM runs')" 6
check_eq "six distinct run ids 1..6" "$(sq 'SELECT group_concat(id) FROM (SELECT id FROM runs ORDER BY id)')" "1,2,3,4,5,6"
check_eq "every run: completed, $EPOCHS epochs" \
    "$(sq "SELECT count(*) FROM runs WHERE status = 'completed' AND epochs_done = $EPOCHS")" 6
check_eq "metric rows per run (7 per epoch)" \
    "$(sq "SELECT group_concat(n) FROM (SELECT (SELECT count(*) FROM metrics m WHERE m.run_id = r.id) AS n FROM runs r ORDER BY r.id)")" \
    "28,28,28,28,28,28"
check_eq "checkpoints per run (one per epoch)" \
    "$(sq "SELECT group_concat(n) FROM (SELECT (SELECT count(*) FROM checkpoints c WHERE c.run_id = r.id) AS n FROM runs r ORDER BY r.id)")" \
    "4,4,4,4,4,4"
check_eq "settings recorded per run (each run its own seed)" \
    "$(sq "SELECT group_concat(value) FROM (SELECT value FROM run_params WHERE key = 'train.seed' ORDER BY value)")" \
    "11,12,13,21,22,23"
check_eq "round 1's runs have ids 1..3, each its own model" \
    "$(sq "SELECT group_concat(name || ':' || param_count) FROM (SELECT name, param_count FROM runs WHERE id <= 3 ORDER BY name)")" \
    "mnist_dense:109386,mnist_one_conv:87322,mnist_two_conv:27562"
check_eq "integrity_check" "$(sq 'PRAGMA integrity_check')" ok
check_eq "schema version" "$(sq 'PRAGMA user_version')" \
    "$(sed -n 's/^#define LP_RUNSDB_SCHEMA_VERSION \([0-9]*\).*/\1/p' experiments/store/runsdb.h)"
check_eq "journal mode" "$(sq 'PRAGMA journal_mode')" wal

e2e_finish
