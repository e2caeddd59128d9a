#!/bin/sh
# e2e_crash.sh - crash safety of the runs database: training runs on one database
# are killed with SIGKILL at random moments, new runs and resumed ones alike. After
# every kill the file passes PRAGMA integrity_check and every committed epoch has
# its metrics, its checkpoint and its evaluation (confusion matrix, per-class rows,
# misclassified images), or none of them; then every run resumes to completion.
# Ctrl-C (SIGINT) stops a run as 'interrupted' with exit 130, and it resumes too,
# also when it came before the first epoch was committed.
#
#   LOUPE_BIN=bin/loupe LOUPE_BUILD=build sh tests/e2e_crash.sh
. "$(dirname "$0")/lib_e2e.sh"
e2e_init e2e_crash
DB=$T/crash.db
EPOCHS=8
KILLS=12
# 50 batches of 64 per epoch and 500 test images: the 8 epochs take ~0.5-1 s on one
# core (with 960 images a whole run took 176 ms once the kernels got faster), so a
# random kill lands in loading, training, evaluation or a commit.
set -- configs/mnist_two_conv.yaml --set data.train_limit=3200 --set data.test_limit=500 \
    --set train.epochs=$EPOCHS --set tracking.checkpoint_every=1 --db "$DB" --threads 1 --quiet

# Round 0: an uninterrupted run measures how long one takes here, so the kills
# fall inside runs however fast or busy the machine is.
run "$L" train "$@" --json
expect_rc 0 "round 0: a whole run completes"
WALL_MS=$(awk -v w="$(json_field wall_s "$T/out")" 'BEGIN { printf "%d", w * 1000 }')
check_num "round 0: took a measurable time (ms)" "$WALL_MS" '>=' 200
# Kills fall in the first 60% of that: a busy machine can make round 0 slower than
# the rounds after it, and a kill after the end kills nothing.
SPAN=$((WALL_MS * 6 / 10 - 50))

killed=0
midway=0
i=1
while [ $i -le $KILLS ]; do
    # Odd rounds start a new run; even rounds resume the newest unfinished one.
    R=$(sq "SELECT id FROM runs WHERE status != 'completed' ORDER BY id DESC LIMIT 1" 2>/dev/null)
    if [ $((i % 2)) -eq 0 ] && [ -n "$R" ]; then
        what="round $i: resume of run $R"
        "$L" train --resume "$R" --db "$DB" --threads 1 --quiet >"$T/log" 2>&1 &
    else
        what="round $i: new run"
        "$L" train "$@" >"$T/log" 2>&1 &
    fi
    P=$!
    E2E_PIDS="$E2E_PIDS $P"
    ms=$((50 + $(rand_below $SPAN)))
    sleep_ms $ms
    kill -9 "$P" 2>/dev/null
    wait "$P" 2>/dev/null
    rc=$?
    if [ $rc -eq 137 ]; then
        killed=$((killed + 1))
        ok "$what killed after ${ms} ms"
    elif [ $rc -eq 0 ]; then
        ok "$what finished before the kill at ${ms} ms"
    else
        bad "$what: exit $rc (expected 137 from the kill, or 0)" "$(tail -n 3 "$T/log")"
    fi
    check_eq "round $i: integrity_check" "$(sq 'PRAGMA integrity_check')" ok
    check_eq "round $i: every committed epoch has metrics and checkpoint" "$(sq "$CONSISTENT")" "0|0|0|0"
    check_eq "round $i: and its whole evaluation, no other epoch any" "$(sq "$EVAL_CONSISTENT")" "0|0"
    n=$(sq "SELECT count(*) FROM runs WHERE status = 'running' AND epochs_done BETWEEN 1 AND $((EPOCHS - 1))")
    [ "$n" -gt 0 ] && midway=$((midway + 1))
    i=$((i + 1))
done
check_num "most rounds were really killed" "$killed" '>=' $((KILLS * 2 / 3))
check_num "some kills left a run with committed epochs, mid-training" "$midway" '>=' 1
check_num "the rounds made several runs" "$(sq 'SELECT count(*) FROM runs')" '>=' $((KILLS / 4))

# Resume every unfinished run to the end: all complete with all their epochs.
for R in $(sq "SELECT id FROM runs WHERE status != 'completed' ORDER BY id"); do
    before=$(sq "SELECT epochs_done FROM runs WHERE id = $R")
    run "$L" train --resume "$R" --db "$DB" --threads 1 --quiet --json
    expect_rc 0 "resume run $R (killed with $before epochs committed)"
    expect_err "resuming run $R after epoch $before of $EPOCHS" "resume of run $R starts after its last commit"
    check_eq "run $R completed" "$(json_field status "$T/out")" completed
done
check_eq "all runs completed with $EPOCHS epochs" \
    "$(sq "SELECT count(*) FROM runs WHERE status != 'completed' OR epochs_done != $EPOCHS")" 0
check_eq "every run has 7 x $EPOCHS metric rows and $EPOCHS checkpoints" \
    "$(sq "SELECT count(*) FROM runs r WHERE (SELECT count(*) FROM metrics WHERE run_id = r.id) != 7 * $EPOCHS
        OR (SELECT count(*) FROM checkpoints WHERE run_id = r.id) != $EPOCHS")" 0
check_eq "exactly one best checkpoint per run" \
    "$(sq "SELECT count(*) FROM runs r WHERE (SELECT sum(is_best) FROM checkpoints WHERE run_id = r.id) != 1")" 0
check_eq "integrity_check after the resumes" "$(sq 'PRAGMA integrity_check')" ok
check_eq "final consistency" "$(sq "$CONSISTENT")" "0|0|0|0"
check_eq "final consistency of the evaluations" "$(sq "$EVAL_CONSISTENT")" "0|0"

# A resumed run's last checkpoint reloads to the accuracy recorded for it.
R=$(sq "SELECT id FROM runs ORDER BY id DESC LIMIT 1")
run "$L" eval --run "$R" --checkpoint last --db "$DB" --json
expect_rc 0 "eval --run $R --checkpoint last"
check_eq "its checkpoint gives the recorded epoch-$EPOCHS accuracy" "$(json_field test_acc "$T/out")" \
    "$(sq "SELECT printf('%.6f', value) FROM metrics WHERE run_id = $R AND epoch = $EPOCHS AND split = 'test' AND name = 'acc'")"

# ---- Ctrl-C after two committed epochs: 'interrupted', exit 130, resumable ----
R=$(($(sq 'SELECT max(id) FROM runs') + 1))
# Epochs of 20,000 images (~0.3 s each on one thread), so the signal lands well before
# the last of the 8 epochs (4,000 took 70 ms an epoch once the steps got faster).
"$L" train "$@" --set data.train_limit=20000 >"$T/out" 2>"$T/err" &
P=$!
E2E_PIDS="$E2E_PIDS $P"
if wait_for_run "id = $R AND epochs_done >= 2" 1200; then ok "run $R committed 2 epochs"; else bad "run $R never committed 2 epochs"; fi
kill -INT "$P"
wait "$P"
RC=$?
expect_rc 130 "SIGINT during run $R"
check_eq "run $R status" "$(sq "SELECT status FROM runs WHERE id = $R")" interrupted
check_num "run $R kept its committed epochs" "$(sq "SELECT epochs_done FROM runs WHERE id = $R")" '>=' 2
expect_err "continue with: loupe train --resume $R --db $DB" "SIGINT says how to continue"
check_eq "consistency after SIGINT" "$(sq "$CONSISTENT")" "0|0|0|0"
run "$L" train --resume "$R" --db "$DB" --threads 1 --quiet --json
expect_rc 0 "resume of the interrupted run $R"
check_eq "interrupted run $R completed all epochs" \
    "$(sq "SELECT status || ' ' || epochs_done FROM runs WHERE id = $R")" "completed $EPOCHS"

# ---- SIGTERM (as a scheduler or `kill` sends) in the first epoch: handled as Ctrl-C,
# nothing committed, resume starts over ----
"$L" train configs/mnist_two_conv.yaml --set data.test_limit=500 \
    --set train.epochs=1 --db "$DB" --threads 1 --quiet >"$T/out" 2>"$T/err" &
P=$!
E2E_PIDS="$E2E_PIDS $P"
R=$((R + 1))
if wait_for_run "id = $R" 600; then ok "run $R started"; else bad "run $R never started"; fi
sleep 0.2   # past the signal handler's installation, well inside epoch 1 (938 batches: ~1 s even at 60k images/s)
kill -TERM "$P"
wait "$P"
RC=$?
expect_rc 130 "SIGTERM in the first epoch of run $R"
expect_err "interrupted in epoch 1" "SIGTERM names the epoch"
check_eq "run $R interrupted with nothing committed" \
    "$(sq "SELECT status || ' ' || epochs_done || ' ' || (SELECT count(*) FROM checkpoints WHERE run_id = $R) FROM runs WHERE id = $R")" \
    "interrupted 0 0"
run "$L" train --resume "$R" --db "$DB" --threads 1 --quiet --json
expect_rc 0 "resume of run $R with no checkpoint starts from epoch 1"
expect_err "resuming run $R after epoch 0 of 1" "resume says it starts over"
check_eq "run $R completed" "$(sq "SELECT status || ' ' || epochs_done FROM runs WHERE id = $R")" "completed 1"
check_eq "integrity_check at the end" "$(sq 'PRAGMA integrity_check')" ok

e2e_finish
