#!/bin/sh
# e2e_batch_norm.sh - batch norm's running statistics as state, end to end: the
# summary's trainable / non-trainable split; a run killed with SIGKILL and resumed
# ends with the same checkpoint bytes (running mean and variance included) as one
# never stopped; export to safetensors and back gives the same test accuracy; and
# the batch-of-1 and bad-attribute config errors with their file:line:col.
#
#   LOUPE_BIN=bin/loupe LOUPE_BUILD=build sh tests/e2e_batch_norm.sh
. "$(dirname "$0")/lib_e2e.sh"
e2e_init e2e_batch_norm
DB=$T/bn.db
CFG=configs/mnist_two_conv_bn.yaml

# ---- summary: Keras's split ----
run "$L" summary $CFG
expect_rc 0 "summary of $CFG"
expect_out "  bn1            batch_norm             [8, 26, 26]              32" "bn1: 8 x (weight, bias, running mean, running var)"
expect_out "  total                                                      54,322" "total with the running statistics"
expect_out "  trainable                                                  54,018" "trainable parameters"
expect_out "  non-trainable (running statistics)                            304" "non-trainable: 2 x (8 + 16 + 128)"
run "$L" summary $CFG --json
check_eq "summary --json: trainable / non-trainable" \
    "$(json_field trainable "$T/out"),$(json_field non_trainable "$T/out")" "54018,304"

# ---- SIGKILL + resume: bit-identical, running statistics included ----
# 2 threads: two lanes meeting at each batch norm. 12,000 images, an epoch ~1 s.
BASE="$CFG --set data.train_limit=12000 --set data.test_limit=1000 --set train.epochs=3
      --db $DB --threads 2 --quiet"
# shellcheck disable=SC2086
run "$L" train $BASE
expect_rc 0 "run 1 trains 3 epochs without a stop"
# shellcheck disable=SC2086
"$L" train $BASE >"$T/out" 2>"$T/err" &
P=$!
E2E_PIDS="$E2E_PIDS $P"
if wait_for_run "id = 2 AND epochs_done >= 1" 120; then ok "run 2 committed epoch 1"; else bad "run 2 never reached epoch 1"; fi
kill -9 "$P"
wait "$P" 2>/dev/null
STOPPED=$(sq "SELECT epochs_done FROM runs WHERE id = 2")
check "run 2 died before its last epoch" test "$STOPPED" -lt 3
run "$L" train --resume 2 --db "$DB" --threads 2 --quiet
expect_rc 0 "resume run 2"
check_eq "the epoch-3 checkpoints are identical (weights, running statistics, optimizer state)" \
    "$(sq "SELECT count(DISTINCT weights) || ' ' || count(*) FROM checkpoints WHERE epoch = 3 AND run_id IN (1, 2)")" \
    "1 2"
check_eq "and so are the test accuracies of every epoch" \
    "$(sq "SELECT count(*) FROM metrics a JOIN metrics b ON a.epoch = b.epoch AND a.split = b.split AND a.name = b.name
           WHERE a.run_id = 1 AND b.run_id = 2 AND a.name = 'acc' AND a.value = b.value")" 6
check "the running statistics moved (the comparison is not vacuous)" \
    test "$(sq "SELECT count(DISTINCT weights) FROM checkpoints WHERE run_id = 1")" -eq 3

# ---- safetensors out and back in ----
run "$L" export 1 --checkpoint last --db "$DB" -o "$T/bn.safetensors"
expect_rc 0 "export run 1"
for t in bn1.running_mean bn1.running_var bn2.running_var bn3.running_mean bn3.weight; do
    check "export holds $t" grep -qa "\"$t\"" "$T/bn.safetensors"
done
run "$L" eval --run 1 --checkpoint last --db "$DB" --json
WANT=$(json_field test_acc "$T/out")
check "eval --run 1 gives an accuracy" test -n "$WANT"
run "$L" eval $CFG --set data.test_limit=1000 --weights "$T/bn.safetensors" --json
expect_rc 0 "eval with the exported weights"
check_eq "same test accuracy from the file as from the checkpoint (running statistics imported)" \
    "$(json_field test_acc "$T/out")" "$WANT"

# The same file in PyTorch: a strict load into BatchNorm2d/1d layers (running
# statistics present), the same accuracy on the same 1,000 images.
if OMP_NUM_THREADS=1 /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    TORCH_ACC=$(OMP_NUM_THREADS=1 /usr/bin/python3 tests/fixtures/bn_torch_eval.py "$T/bn.safetensors" "$MNIST" 1000 2>"$T/py.err")
    check_eq "PyTorch loads the export strictly and gets loupe's accuracy" "$TORCH_ACC" "$WANT"
else
    todo_skip "PyTorch loads the export" "python3-torch not installed (make bench-deps)"
fi

# ---- bad input ----
run "$L" train $CFG --set train.batch_size=1 --db "$DB"
expect_rc 2 "batch size 1 with batch norm is refused"
expect_err "train.batch_size: batch size 1 with batch_norm" "batch size 1: says why"
run "$L" train $CFG --set data.train_limit=129 --db "$DB"
expect_rc 2 "a last batch of 1 is refused"
expect_err "configs/mnist_two_conv_bn.yaml:36:15: train.batch_size: 129 training images in batches of 64 leave a last batch of 1" \
    "last batch of 1: file:line:col of train.batch_size"
sed 's/{op: batch_norm, name: bn2}/{op: batch_norm, name: bn2, momentum: 1.5}/' $CFG >"$T/bad.yaml"
run "$L" summary "$T/bad.yaml"
expect_rc 2 "momentum 1.5 is refused"
expect_err "bad.yaml:19:45: node 'bn2' (batch_norm): momentum must be in [0, 1)" "momentum: file:line:col"
sed "s/rate: 0.3/rate: 1/" $CFG >"$T/bad.yaml"
run "$L" summary "$T/bad.yaml"
expect_rc 2 "dropout rate 1 is refused"
expect_err "bad.yaml:26:27: node 'dropout1' (dropout): rate must be in [0, 1)" "rate: file:line:col"
sed 's/{op: batch_norm, name: bn1}/{op: batch_norm, name: bn1, epsilon: -1e-5}/' $CFG >"$T/bad.yaml"
run "$L" summary "$T/bad.yaml"
expect_rc 2 "negative epsilon is refused"
expect_err "node 'bn1' (batch_norm): epsilon must be >= 0" "epsilon: says why"

e2e_finish
