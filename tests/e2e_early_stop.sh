#!/bin/sh
# e2e_early_stop.sh - model selection end to end (issue 13): a real run with a
# validation split and early stopping stops when its metric stalls, flags the best
# checkpoint by that metric and records val metrics and why it stopped; a run killed
# with SIGKILL mid-way under a reduce-on-plateau schedule and early stopping resumes
# to the same bits, stopping at the same epoch (their state travels in checkpoints);
# a validation split as large as the training set is a config error.
#
#   LOUPE_BIN=bin/loupe LOUPE_BUILD=build sh tests/e2e_early_stop.sh
. "$(dirname "$0")/lib_e2e.sh"
e2e_init e2e_early_stop
DB=$T/es.db

# ---- early stopping really stops ----
# min_delta 0.5: no epoch after the first can improve val/acc by half, so with
# patience 2 the run must stop after epoch 3 of 20, whatever the numbers.
SMALL="configs/mnist_two_conv.yaml --set data.train_limit=1500 --set data.test_limit=300
       --set data.validation=300 --db $DB --threads 1 --quiet"
# shellcheck disable=SC2086
run "$L" train $SMALL --set train.epochs=20 --set "train.early_stop={metric: val/acc, patience: 2, min_delta: 0.5}" --json
expect_rc 0 "early stop: run 1 ends normally"
check_eq "early stop: run 1 completed after 3 of 20 epochs" \
    "$(sq "SELECT status || ' ' || epochs_done FROM runs WHERE id = 1")" "completed 3"
REASON=$(sq "SELECT stop_reason FROM runs WHERE id = 1")
case $REASON in
"early_stop: val/acc did not improve for 2 epochs (best "*" at epoch 1)") ok "early stop: stop_reason says why: $REASON" ;;
*) bad "early stop: stop_reason is '$REASON'" ;;
esac
check_eq "early stop: --json carries the reason" "$(json_field stop_reason "$T/out")" "$REASON"
check_eq "early stop: --json says the best epoch was picked by val/acc" "$(json_field selected_by "$T/out")" val/acc
check_eq "early stop: the best checkpoint is epoch 1 (the early-stop metric's best)" \
    "$(sq "SELECT epoch FROM checkpoints WHERE run_id = 1 AND is_best = 1")" 1
check_eq "early stop: val loss and accuracy recorded for each epoch (epoch_metrics view)" \
    "$(sq "SELECT count(*) FROM epoch_metrics WHERE run_id = 1 AND val_loss > 0 AND val_acc > 0")" 3
check_eq "early stop: 300 validation images, 1200 trained on (the data fingerprint's counts)" \
    "$(sq "SELECT data_train_count || ' ' || data_test_count FROM runs WHERE id = 1")" "1200 300"
run "$L" runs show 1 --db "$DB"
expect_out "stopped: early_stop: val/acc did not improve for 2 epochs" "early stop: runs show prints the reason"
expect_out "  val loss    val acc  test loss   test acc" "early stop: runs show has validation columns"
check_eq "early stop: runs show's epoch-1 line has the recorded val and test accuracy" \
    "$(grep -E '^ +1 ' "$T/out" | awk '{print $5, $7}')" \
    "$(sq "SELECT printf('%.2f%%', 100 * (SELECT value FROM metrics WHERE run_id = 1 AND epoch = 1 AND split = 'val' AND name = 'acc')) || ' ' ||
                  printf('%.2f%%', 100 * (SELECT value FROM metrics WHERE run_id = 1 AND epoch = 1 AND split = 'test' AND name = 'acc'))")"

# A run that trains all its epochs says so; without early stopping the best
# checkpoint follows val/acc when there is a split.
# shellcheck disable=SC2086
run "$L" train $SMALL --set train.epochs=2
expect_rc 0 "epochs: run 2 trains 2 epochs"
check_eq "epochs: stop_reason is 'epochs'" "$(sq "SELECT stop_reason FROM runs WHERE id = 2")" epochs
check_eq "epochs: is_best is on the epoch with the highest val/acc" \
    "$(sq "SELECT c.epoch FROM checkpoints c WHERE c.run_id = 2 AND c.is_best = 1")" \
    "$(sq "SELECT epoch FROM metrics WHERE run_id = 2 AND split = 'val' AND name = 'acc' ORDER BY value DESC, epoch LIMIT 1")"
# The same images without the split fingerprint differently.
check "the same split gives the same data fingerprint" test \
    "$(sq "SELECT count(DISTINCT data_sha256) FROM runs WHERE id IN (1, 2)")" = 1
# shellcheck disable=SC2086
run "$L" train configs/mnist_two_conv.yaml --set data.train_limit=1500 --set data.test_limit=300 \
    --set train.epochs=1 --db "$DB" --threads 1 --quiet
check "... and without it the fingerprint differs" test \
    "$(sq "SELECT count(DISTINCT data_sha256) FROM runs WHERE id IN (1, 3)")" = 2

# ---- bad input ----
run "$L" train configs/mnist_two_conv.yaml --set data.validation=60000 --db "$DB" --quiet
expect_rc 2 "validation of all 60,000 training images is a config error (exit 2)"
expect_err "--set data.validation=60000: data.validation: cannot hold out 60000 of 60000 training images" \
    "... naming data.validation"
run "$L" train configs/mnist_two_conv.yaml --set "train.early_stop={metric: test/acc, patience: 0}" --db "$DB" --quiet
expect_rc 2 "early_stop.patience 0 is a config error"
expect_err "train.early_stop.patience: expected an integer from 1" "... naming the key"

# ---- kill -9 under plateau + early stopping, resume, bit-identical ----
# The plateau schedule halves the lr whenever val/loss does not halve (threshold 0.5,
# patience 0: almost every epoch), and early stopping on val/loss with min_delta 0.5
# stops after epoch 1 + 3: the resumed run gets both right only from the checkpoint.
DB=$T/resume.db
BASE="configs/mnist_two_conv.yaml --set data.train_limit=20000 --set data.test_limit=1000
      --set data.validation=2000 --set train.epochs=8 --set tracking.checkpoint_every=1
      --set train.schedule={type: plateau, metric: val/loss, patience: 0, factor: 0.5, threshold: 0.5}
      --set train.early_stop={metric: val/loss, patience: 3, min_delta: 0.5}
      --db $DB --threads 1 --quiet"
IFS_SAVE=$IFS
IFS='
'
# one argument per line: the flow maps contain spaces
ARGS=$(echo "$BASE" | sed 's/^ *//; s/ --/\n--/g' | sed 's/^\(--[a-z]*\) /\1\n/')
# shellcheck disable=SC2086
run "$L" train $ARGS
expect_rc 0 "resume: run 1 trains uninterrupted"
# shellcheck disable=SC2086
"$L" train $ARGS >"$T/out" 2>"$T/err" &
P=$!
IFS=$IFS_SAVE
E2E_PIDS="$E2E_PIDS $P"
if wait_for_run "id = 2 AND epochs_done >= 2" 2400; then ok "resume: run 2 committed epoch 2"; else bad "resume: run 2 never reached epoch 2"; fi
kill -9 "$P"
wait "$P" 2>/dev/null
RC=$?
expect_rc 137 "resume: kill -9 run 2"
STOPPED=$(sq "SELECT epochs_done FROM runs WHERE id = 2")
check "resume: run 2 died before early stopping ended it (2 or 3 epochs)" test "$STOPPED" -eq 2 -o "$STOPPED" -eq 3
run "$L" train --resume 2 --db "$DB" --threads 1 --quiet
expect_rc 0 "resume: resume run 2"
check_eq "resume: both runs early-stopped after epoch 4 with the same reason" \
    "$(sq "SELECT group_concat(status || ' ' || epochs_done || ' ' || stop_reason, ' | ') FROM runs ORDER BY id")" \
    "$(sq "SELECT status || ' ' || epochs_done || ' ' || stop_reason FROM runs WHERE id = 1") | $(sq "SELECT status || ' ' || epochs_done || ' ' || stop_reason FROM runs WHERE id = 1")"
check_eq "resume: run 1 stopped after epoch 4 (1 + patience 3)" "$(sq "SELECT epochs_done FROM runs WHERE id = 1")" 4
check "resume: the plateau schedule lowered the lr (the state matters)" \
    test "$(sq "SELECT count(DISTINCT value) FROM metrics WHERE run_id = 1 AND name = 'lr'")" -ge 2
metrics_of() {
    sq "SELECT epoch, step, split, name, printf('%.17g', value) FROM metrics WHERE run_id = $1
        AND name NOT IN ('seconds', 'images_per_s') ORDER BY epoch, split, name"
}
metrics_of 1 >"$T/ma"
metrics_of 2 >"$T/mb"
check_eq "resume: 7 metrics (val included) x 4 epochs" "$(wc -l <"$T/ma" | tr -d ' ')" 28
if cmp -s "$T/ma" "$T/mb"; then
    ok "resume: per-epoch train/val/test metrics and lr identical"
else
    bad "resume: metrics differ:" "$(diff "$T/ma" "$T/mb" | head -n 8 | tr '\n' ';')"
fi
check_eq "resume: last checkpoints identical (weights, optimizer, plateau and early-stop state)" \
    "$(sq "SELECT count(DISTINCT weights) || ' ' || count(*) FROM checkpoints WHERE epoch = 4")" "1 2"
check_eq "resume: the same epoch flagged best" \
    "$(sq "SELECT group_concat(epoch) FROM checkpoints WHERE is_best = 1 ORDER BY run_id")" \
    "$(sq "SELECT epoch FROM checkpoints WHERE is_best = 1 AND run_id = 1"),$(sq "SELECT epoch FROM checkpoints WHERE is_best = 1 AND run_id = 1")"

e2e_finish
