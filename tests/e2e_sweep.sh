#!/bin/sh
# e2e_sweep.sh - `loupe sweep` on real MNIST (tiny): a grid of 6 trials, 2 at a time
# as separate processes on one database, each a child run of the sweep's parent run;
# two trials diverge (lr 1e30: NaN) without stopping the others; `runs compare
# --sweep` ranks them. Then a sweep killed with SIGKILL mid-way and resumed: the
# trials that had finished are not run again (rows and metrics unchanged), the
# interrupted ones resume from their checkpoints, every trial completes, and the
# database passes PRAGMA integrity_check. Config mistakes stop a sweep before any
# trial runs. About 20 s on 2 cores.
#
#   LOUPE_BIN=bin/loupe LOUPE_BUILD=build sh tests/e2e_sweep.sh
. "$(dirname "$0")/lib_e2e.sh"
e2e_init e2e_sweep

# wait_any SQL-CONDITION: until at least one run matches (60 s at most).
wait_any() {
    n=0
    while [ "$(sq "SELECT count(*) >= 1 FROM runs WHERE $1" 2>/dev/null)" != 1 ]; do
        n=$((n + 1))
        [ $n -gt 1200 ] && return 1
        sleep 0.05
    done
}

# A dense net small enough that a trial is mostly process start-up.
write_config() { # FILE TRAIN_LIMIT EPOCHS SWEEP-LINES...
    f=$1
    cat >"$f" <<EOF
name: sweep_e2e
model:
  input: [1, 28, 28]
  layers:
    - {op: flatten}
    - {op: dense, name: fc1, units: 32}
    - {op: relu}
    - {op: dense, name: fc2, units: 10}
  loss: softmax_cross_entropy
data: {dataset: mnist, train_limit: $2, test_limit: 500, normalize: [0.1307, 0.3081]}
train:
  epochs: $3
  batch_size: 64
  optimizer: {type: sgd, lr: 0.05, momentum: 0.9}
EOF
    shift 3
    for line in "$@"; do echo "$line" >>"$f"; done
}

# ---- mistakes: nothing runs ----
DB=$T/bad.db
write_config "$T/bad.yaml" 2000 1 "sweep:" "  grid:" "    train.optimizer.lrr: [0.1, 0.2]"
run "$L" sweep "$T/bad.yaml" --db "$DB"
expect_rc 2 "an unknown key path in the sweep is a config error"
expect_err "bad.yaml:17:5: sweep trial 1 (train.optimizer.lrr=0.1): unknown key 'train.optimizer.lrr'" \
    "... naming the key's file:line:col"
check "... before any run is recorded (no database created)" test ! -e "$DB"

write_config "$T/bad2.yaml" 2000 1 "sweep:" "  grid:" "    train.optimizer.lr: [0.1]" "    train.batch_size: [32, big]"
run "$L" sweep "$T/bad2.yaml" --db "$DB"
expect_rc 2 "a value of the wrong type in one trial stops the whole sweep"
expect_err "bad2.yaml:18:28: sweep trial 2 (train.batch_size=big): train.batch_size: expected an integer" \
    "... naming the value's file:line:col"

write_config "$T/bad3.yaml" 2000 1 "sweep:" "  random: {trials: 0, space: {train.optimizer.lr: {log_uniform: [0.001, 0.1]}}}"
run "$L" sweep "$T/bad3.yaml" --db "$DB"
expect_rc 2 "random trials: 0 is refused"
expect_err "bad3.yaml:16:20: sweep.random.trials: expected an integer from 1 to 10000, found 0" "... at its file:line:col"
check "still no database" test ! -e "$DB"

run "$L" sweep configs/mnist_two_conv_sweep.yaml --dry-run
expect_rc 0 "the shipped sweep config checks"
expect_out "trial 6: train.optimizer.lr=0.1 train.batch_size=64" "... and has its 6 trials"

write_config "$T/random.yaml" 2000 1 "sweep:" "  random:" "    trials: 5" "    seed: 7" "    space:" \
    "      train.optimizer.lr: {log_uniform: [0.001, 0.1]}" "      train.batch_size: {choice: [16, 32, 64]}" \
    "      model.layers.1.units: {int: [8, 12]}"
run "$L" sweep "$T/random.yaml" --dry-run
expect_rc 0 "a random sweep checks"
cp "$T/out" "$T/random1"
run "$L" sweep "$T/random.yaml" --dry-run
check "... and draws the same 5 trials again from its seed" cmp -s "$T/out" "$T/random1"
check "... each inside its ranges" awk '/^  trial/ {
        split($3, a, "="); split($4, b, "="); split($5, c, "=");
        if (!(a[2] >= 0.001 && a[2] <= 0.1 && (b[2] == 16 || b[2] == 32 || b[2] == 64) && c[2] >= 8 && c[2] <= 12 && c[2] == int(c[2]))) bad = 1
        n++ } END { exit !(n == 5 && !bad) }' "$T/out"

# ---- a grid of 6, 2 at a time, two trials diverging ----
CFG=$T/grid.yaml
write_config "$CFG" 2000 1 "sweep:" "  grid:" "    train.optimizer.lr: [0.02, 0.1, 1.0e30]" "    train.batch_size: [32, 64]"
DB=$T/grid.db

run "$L" train "$CFG" --db "$DB"
expect_rc 2 "loupe train refuses a config with a sweep"
expect_err "grid.yaml:15:1: this config declares a sweep: run it with \`loupe sweep" "... and points at loupe sweep"

run "$L" sweep "$CFG" --dry-run
expect_rc 0 "--dry-run checks every trial"
expect_out "trial 6: train.optimizer.lr=1.0e30 train.batch_size=64" "... and lists them in grid order"

run "$L" sweep "$CFG" -j 2 --db "$DB" --threads 1
expect_rc 5 "the sweep ends with the failed trials' exit status (5: NaN)"
cp "$T/err" "$T/grid.err"
P=$(sq "SELECT id FROM runs WHERE kind = 'sweep'")
check_eq "one parent row of kind 'sweep'" "$(sq "SELECT count(*) FROM runs WHERE kind = 'sweep'")" 1
check_eq "its status and stop reason" "$(sq "SELECT status || ' | ' || stop_reason FROM runs WHERE id = $P")" \
    "failed | trials: 4 completed, 2 failed, 0 not finished"
check "its error names the failed trials and why" \
    grep -q "2 of 6 trials did not complete: trial 5 (run [0-9]*) failed: loss became NaN" <<EOF
$(sq "SELECT error FROM runs WHERE id = $P")
EOF
check_eq "6 child runs, trials 1..6, each once" \
    "$(sq "SELECT count(*) || ' ' || count(DISTINCT sweep_trial) || ' ' || min(sweep_trial) || ' ' || max(sweep_trial)
           FROM runs WHERE parent_run_id = $P")" "6 6 1 6"
check_eq "4 completed, 2 failed (the lr 1e30 ones)" \
    "$(sq "SELECT group_concat(r.sweep_trial || ':' || r.status || ':' || p.value, ' ') FROM
           (SELECT * FROM runs WHERE parent_run_id = $P ORDER BY sweep_trial) r
           JOIN run_params p ON p.run_id = r.id AND p.key = 'train.optimizer.lr'")" \
    "1:completed:0.02 2:completed:0.02 3:completed:0.1 4:completed:0.1 5:failed:1e+30 6:failed:1e+30"
check_eq "grid order: the first key slowest" \
    "$(sq "SELECT group_concat(p.value, ' ') FROM (SELECT * FROM runs WHERE parent_run_id = $P ORDER BY sweep_trial) r
           JOIN run_params p ON p.run_id = r.id AND p.key = 'train.batch_size'")" "32 64 32 64 32 64"
check "two trials ran at once (trial 2 started before trial 1 ended)" \
    awk '/^\[2\/6\] started/ { s = NR } /^\[1\/6\] (completed|failed)/ { e = NR } END { exit !(s && e && s < e) }' "$T/grid.err"
check "failed trials are reported as they end" grep -q '^\[5/6\] failed: run [0-9]* after 0 epochs: loss became NaN' "$T/grid.err"
check_eq "every completed trial recorded its epoch" "$(sq "$(consistent_sql "parent_run_id = $P")")" "0|0|0|0"

run "$L" runs compare --sweep "$P" --db "$DB"
expect_rc 0 "runs compare --sweep"
BEST=$(sq "SELECT id FROM runs WHERE parent_run_id = $P ORDER BY best_test_acc DESC, sweep_trial LIMIT 1")
check "rank 1 is the trial with the best test accuracy (run $BEST)" \
    awk -v b="$BEST" 'NR == 2 { exit !($1 == 1 && $2 == b) }' "$T/out"
check "the swept settings are columns" awk 'NR == 1 { exit !(/ lr / && / batch_size /) }' "$T/out"
check "the failed trials rank last" awk 'NR == 6 || NR == 7 { if ($0 !~ / failed /) bad = 1 } END { exit bad }' "$T/out"
run "$L" runs compare --sweep "$P" --db "$DB" --json
expect_rc 0 "runs compare --sweep --json"
check_eq "... one JSON object: the sweep, its status, rank 1" \
    "$(json_field sweep "$T/out") $(json_field status "$T/out") $(grep -c "\"trials\":\[{\"rank\":1,\"run_id\":$BEST,\"trial\":[0-9]*,\"params\":{\"train.optimizer.lr\":\"[0-9.]*\",\"train.batch_size\":\"[0-9]*\"}" "$T/out")" \
    "$P failed 1"
run "$L" runs compare --sweep "$P" --by test/loss --db "$DB"
expect_rc 0 "runs compare --sweep --by test/loss"
LOW=$(sq "SELECT r.id FROM runs r WHERE parent_run_id = $P AND status = 'completed' ORDER BY
          (SELECT min(value) FROM metrics m WHERE m.run_id = r.id AND split = 'test' AND name = 'loss') LIMIT 1")
check "... ranks the lowest loss first (run $LOW)" awk -v b="$LOW" 'NR == 2 { exit !($2 == b) }' "$T/out"
run "$L" runs compare --sweep "$BEST" --db "$DB"
expect_rc 2 "runs compare --sweep of a trial"
expect_err "is not a sweep" "... says it is not a sweep"

run "$L" runs list --db "$DB"
expect_out "sweep (6 trials)" "runs list marks the sweep"
expect_out "trial 3 of $P" "... and its trials"

echo "# edited" >>"$CFG"
run "$L" sweep --resume "$P" --db "$DB"
expect_rc 2 "a sweep whose config file changed is not resumed"
expect_err "grid.yaml has changed since sweep $P started" "... and says so"

# ---- kill -9 of the sweep mid-way, then --resume ----
CFG=$T/long.yaml
write_config "$CFG" 20000 4 "sweep:" "  grid:" "    train.optimizer.lr: [0.02, 0.05]" "    train.batch_size: [32, 64]"
DB=$T/long.db
"$L" sweep "$CFG" -j 2 --db "$DB" --threads 1 >"$T/long.out" 2>"$T/long.err" &
SP=$!
E2E_PIDS="$E2E_PIDS $SP"
# First one trial's process dies (SIGKILL: a crash), then, once a trial completed, the sweep.
if wait_any "parent_run_id IS NOT NULL AND sweep_trial = 1 AND status = 'running' AND epochs_done >= 1"; then
    kill -9 "$(sq "SELECT pid FROM runs WHERE parent_run_id IS NOT NULL AND sweep_trial = 1")"
    ok "trial 1's process was killed with SIGKILL after its first epoch"
else
    bad "trial 1 did not commit an epoch within 60 s"
fi
if wait_any "parent_run_id IS NOT NULL AND status = 'completed'"; then
    kill -9 "$SP"
    ok "the sweep was killed with SIGKILL after its first trial completed"
else
    bad "no trial completed within 60 s"
fi
wait "$SP" 2>/dev/null
P=$(sq "SELECT id FROM runs WHERE kind = 'sweep'")
# Its trials got SIGTERM when it died (PR_SET_PDEATHSIG): wait for their processes
# (the only ones with this database on their command line) to end.
n=0
while pgrep -f -- "--db $DB" >/dev/null && [ $n -lt 400 ]; do
    n=$((n + 1))
    sleep 0.05
done
check_eq "the trials still training stopped cleanly ('interrupted') when the sweep died" \
    "$(sq "SELECT count(*) FROM runs WHERE parent_run_id = $P AND status NOT IN ('completed', 'crashed', 'interrupted')")" 0
TO_RESUME=$(sq "SELECT count(*) FROM runs WHERE parent_run_id = $P AND status != 'completed'")
sq "SELECT id, status, epochs_done, finished_at,
      (SELECT group_concat(epoch || split || name || printf('%.17g', value) || wall_time, ',') FROM metrics m WHERE m.run_id = r.id),
      (SELECT group_concat(epoch || checksum, ',') FROM checkpoints c WHERE c.run_id = r.id)
    FROM runs r WHERE parent_run_id = $P AND status = 'completed' ORDER BY id" >"$T/done_before"
check "the sweep saw trial 1 crash and went on" \
    grep -q '^\[1/4\] crashed: run [0-9]* after [0-9] epochs*: its process was killed by signal 9' "$T/long.err"
check_eq "... and marked its run crashed" \
    "$(sq "SELECT status FROM runs WHERE parent_run_id = $P AND sweep_trial = 1")" crashed
check "at least one trial had completed" test -s "$T/done_before"
check_eq "the killed sweep is still 'running' (nothing could close it)" \
    "$(sq "SELECT status FROM runs WHERE id = $P")" running
check "some trials had not finished" \
    test "$(sq "SELECT count(*) FROM runs WHERE parent_run_id = $P AND status = 'completed'")" -lt 4

run "$L" sweep --resume "$P" -j 2 --db "$DB" --threads 1
expect_rc 0 "sweep --resume completes the sweep"
expect_err "already completed (run" "finished trials are kept"
expect_err "[1/4] resuming run" "the crashed trial resumes from its checkpoint"
check_eq "every trial with a run that had not completed resumed it" "$(grep -c '] resuming run' "$T/err")" "$TO_RESUME"
sq "SELECT id, status, epochs_done, finished_at,
      (SELECT group_concat(epoch || split || name || printf('%.17g', value) || wall_time, ',') FROM metrics m WHERE m.run_id = r.id),
      (SELECT group_concat(epoch || checksum, ',') FROM checkpoints c WHERE c.run_id = r.id)
    FROM runs r WHERE parent_run_id = $P AND id IN (SELECT id FROM runs WHERE parent_run_id = $P)
    AND id IN ($(cut -d'|' -f1 "$T/done_before" | paste -sd, -)) ORDER BY id" >"$T/done_after"
check "trials finished before the kill were not rerun (rows, metrics, checkpoints unchanged)" \
    cmp -s "$T/done_before" "$T/done_after"
check_eq "every trial completed, each exactly once" \
    "$(sq "SELECT count(*) || ' ' || count(DISTINCT sweep_trial) || ' ' || sum(status = 'completed') || ' ' || sum(epochs_done)
           FROM runs WHERE parent_run_id = $P")" "4 4 4 16"
check_eq "the sweep is completed" "$(sq "SELECT status || ' | ' || COALESCE(error, '-') FROM runs WHERE id = $P")" \
    "completed | -"
check_eq "no run left running" "$(sq "SELECT count(*) FROM runs WHERE status = 'running'")" 0
check_eq "every epoch has its metrics and checkpoint" "$(sq "$CONSISTENT")" "0|0|0|0"
check_eq "PRAGMA integrity_check" "$(sq "PRAGMA integrity_check")" ok

run "$L" sweep --resume "$P" --db "$DB"
expect_rc 0 "resuming a completed sweep does nothing"
expect_out "sweep $P is already completed" "... and says so"

# ---- SIGTERM to the sweep alone: passed on, every trial stops cleanly ----
DB=$T/term.db
"$L" sweep "$CFG" -j 2 --db "$DB" --threads 1 >"$T/term.out" 2>"$T/term.err" &
SP=$!
E2E_PIDS="$E2E_PIDS $SP"
if wait_any "parent_run_id IS NOT NULL AND status = 'running' AND epochs_done >= 1"; then
    kill -TERM "$SP"
    wait "$SP"
    RC=$?
    expect_rc 130 "a sweep sent SIGTERM ends as interrupted"
else
    bad "no trial committed an epoch within 60 s"
fi
check_eq "the sweep and its running trials are 'interrupted', none left running" \
    "$(sq "SELECT (SELECT status FROM runs WHERE kind = 'sweep') || ' ' || count(*) FROM runs WHERE status = 'running'")" \
    "interrupted 0"
check "it says how to continue" grep -q "continue with: loupe sweep --resume" "$T/term.err"

e2e_finish
