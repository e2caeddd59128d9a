#!/bin/sh
# e2e_resume.sh - resume equivalence: a run stopped after epoch 2 and resumed ends
# with exactly the weights and metrics of the same run trained without a stop
# (each epoch's shuffle/augmentation is seeded from (seed, epoch), and the
# optimizer state and step count travel in the checkpoint). Checked three times: SGD with
# momentum stopped by Ctrl-C, Adam and RMSprop with momentum killed with SIGKILL.
#
#   LOUPE_BIN=bin/loupe LOUPE_BUILD=build sh tests/e2e_resume.sh
. "$(dirname "$0")/lib_e2e.sh"
e2e_init e2e_resume
DB=$T/resume.db

# Shuffle, shift augmentation (2 px), cosine schedule with warm-up: everything that
# depends on the epoch is on. 32 batches per epoch, ~0.3 s on one core.
# 20,000 images: an epoch (~0.3 s on one thread) outlasts the 20 ms poll below, so the
# stops land after epoch 2; with 2,000 an epoch took 40 ms and a run could finish first.
BASE="configs/mnist_two_conv.yaml --set data.train_limit=20000 --set data.test_limit=1000
      --set train.epochs=4 --set tracking.checkpoint_every=1 --db $DB --threads 1 --quiet"

# The data section of a safetensors file (after the 8-byte length and the JSON header).
st_data() {
    n=$(od -An -tu8 -N8 "$1" | tr -d ' ')
    tail -c +$((9 + n)) "$1"
}
# The JSON header with the run id blanked (the one field that must differ).
st_header() {
    n=$(od -An -tu8 -N8 "$1" | tr -d ' ')
    head -c $((8 + n)) "$1" | tail -c "$n" | sed 's/"loupe_run":"[0-9]*"/"loupe_run":"-"/'
}

# Per-epoch metrics that must match (seconds and images/s are wall-clock).
metrics_of() {
    sq "SELECT epoch, step, split, name, printf('%.17g', value) FROM metrics WHERE run_id = $1
        AND name NOT IN ('seconds', 'images_per_s') ORDER BY epoch, split, name"
}

# compare_runs LABEL A B: same checkpoint bytes, same exported weights, same metrics.
compare_runs() {
    check_eq "$1: both runs completed 4 epochs" \
        "$(sq "SELECT group_concat(status || ' ' || epochs_done, ', ') FROM runs WHERE id IN ($2, $3)")" \
        "completed 4, completed 4"
    run "$L" export "$2" --checkpoint last --db "$DB" -o "$T/a.safetensors"
    expect_rc 0 "$1: export run $2"
    run "$L" export "$3" --checkpoint last --db "$DB" -o "$T/b.safetensors"
    expect_rc 0 "$1: export run $3"
    st_data "$T/a.safetensors" >"$T/a.bin"
    st_data "$T/b.safetensors" >"$T/b.bin"
    check "$1: exported weights have the 27,562 floats" test "$(wc -c <"$T/a.bin")" -eq $((27562 * 4))
    check "$1: exported weights are byte-identical (cmp)" cmp -s "$T/a.bin" "$T/b.bin"
    check "$1: safetensors headers equal but for the run id" \
        test "$(st_header "$T/a.safetensors")" = "$(st_header "$T/b.safetensors")"
    # The whole checkpoint: weights, optimizer state, step, lr, schedule position.
    check_eq "$1: epoch-4 checkpoint blobs identical (weights + optimizer state)" \
        "$(sq "SELECT count(DISTINCT weights) || ' ' || count(*) FROM checkpoints WHERE epoch = 4 AND run_id IN ($2, $3)")" \
        "1 2"
    metrics_of "$2" >"$T/ma"
    metrics_of "$3" >"$T/mb"
    check_eq "$1: 5 metrics x 4 epochs recorded" "$(wc -l <"$T/ma" | tr -d ' ')" 20
    if cmp -s "$T/ma" "$T/mb"; then
        ok "$1: per-epoch train/test loss, accuracy and lr identical"
    else
        bad "$1: per-epoch metrics differ (run $2 vs run $3):" "$(diff "$T/ma" "$T/mb" | head -n 8 | tr '\n' ';')"
    fi
}

wait_epochs() { # RUN N: until run RUN has N epochs committed (60 s at most)
    k=0
    while [ "$(sq "SELECT epochs_done FROM runs WHERE id = $1" 2>/dev/null)" != "$2" ]; do
        k=$((k + 1))
        [ $k -gt 3000 ] && return 1
        sleep 0.02
    done
}

# ---- SGD + momentum: uninterrupted vs Ctrl-C after epoch 2 + resume ----
# shellcheck disable=SC2086
run "$L" train $BASE
expect_rc 0 "sgd: run 1 trains 4 epochs without a stop"

# shellcheck disable=SC2086
"$L" train $BASE >"$T/out" 2>"$T/err" &
P=$!
E2E_PIDS="$E2E_PIDS $P"
if wait_epochs 2 2; then ok "sgd: run 2 committed epoch 2"; else bad "sgd: run 2 never reached epoch 2"; fi
kill -INT "$P"
wait "$P"
RC=$?
expect_rc 130 "sgd: Ctrl-C stops run 2"
STOPPED=$(sq "SELECT epochs_done FROM runs WHERE id = 2")
check "sgd: run 2 stopped with 2 (or, if the signal came during evaluation, 3) epochs" \
    test "$STOPPED" -eq 2 -o "$STOPPED" -eq 3
check_eq "sgd: run 2 is interrupted" "$(sq "SELECT status FROM runs WHERE id = 2")" interrupted
run "$L" train --resume 2 --db "$DB" --threads 1 --quiet
expect_rc 0 "sgd: resume run 2"
expect_err "resuming run 2 after epoch $STOPPED of 4" "sgd: resume starts after the last commit"
compare_runs sgd 1 2

# kill9_and_compare LABEL OPTIMIZER A: run A uninterrupted, run A+1 killed with
# SIGKILL after epoch 2 and resumed; both must end alike.
kill9_and_compare() {
    B=$(($3 + 1))
    # shellcheck disable=SC2086
    run "$L" train $BASE --set "train.optimizer=$2"
    expect_rc 0 "$1: run $3 trains 4 epochs without a stop"
    # shellcheck disable=SC2086
    "$L" train $BASE --set "train.optimizer=$2" >"$T/out" 2>"$T/err" &
    P=$!
    E2E_PIDS="$E2E_PIDS $P"
    if wait_epochs $B 2; then ok "$1: run $B committed epoch 2"; else bad "$1: run $B never reached epoch 2"; fi
    kill -9 "$P"
    wait "$P" 2>/dev/null
    RC=$?
    expect_rc 137 "$1: kill -9 run $B"
    STOPPED=$(sq "SELECT epochs_done FROM runs WHERE id = $B")
    check "$1: run $B died with 2 or 3 epochs committed" test "$STOPPED" -eq 2 -o "$STOPPED" -eq 3
    check_eq "$1: run $B is still marked running" "$(sq "SELECT status FROM runs WHERE id = $B")" running
    run "$L" train --resume $B --db "$DB" --threads 1 --quiet
    expect_rc 0 "$1: resume run $B"
    compare_runs "$1" "$3" $B
}

# Adam: two moment buffers and a step count.
kill9_and_compare adam "{type: adam, lr: 0.002}" 3
# RMSprop with momentum: square_avg and momentum buffers.
kill9_and_compare rmsprop "{type: rmsprop, lr: 0.0005, momentum: 0.5}" 5

# A resumed run is not the same as a different run: the check above can fail.
check_eq "sgd, adam and rmsprop end with different weights (the comparison is not vacuous)" \
    "$(sq 'SELECT count(DISTINCT weights) FROM checkpoints WHERE epoch = 4')" 3

e2e_finish
