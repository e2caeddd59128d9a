#!/bin/sh
# e2e_robustness.sh - hostile input through the loupe CLI: exit codes, messages, and
# what is left in the runs database (issue 7; docs/robustness.md lists every case).
#   - NaN/Inf: a run stops with exit 5 naming epoch and step, status 'failed', no
#     checkpoint of the poisoned epoch, the good epochs before it kept;
#   - runs databases that are not loupe's, read-only (a read-only bind mount) or on a
#     full disk (a 200 KB tmpfs): exit 4, a clear message, the file as it was;
#   - a checkpoint that does not fit the model: exit 2 naming the tensor;
#   - out of memory: an absurd batch is a config error; an arena or data set that
#     cannot be allocated, or an address-space limit (ulimit -v), is exit 1 with
#     "out of memory", never a hang (OpenBLAS used to retry its allocation forever).
# The mounts need root; without it those checks are skipped and say so.
# Needs data/mnist (make data) and sqlite3. About 30 s.
. "$(dirname "$0")/lib_e2e.sh"
e2e_init robustness
E2E_MOUNTS=
# shellcheck disable=SC2064
trap "for m in \$E2E_MOUNTS; do umount \"\$m\"; done; e2e_cleanup; rm -rf '$T'" EXIT

if [ ! -f "$MNIST/train-images-idx3-ubyte" ] && [ ! -f "$MNIST/train-images-idx3-ubyte.gz" ]; then
    echo "robustness: no MNIST in $MNIST (make data)"
    e2e_finish
fi
command -v sqlite3 >/dev/null || { bad "sqlite3 is needed"; e2e_finish; }

SMALL="--set data.dir=$MNIST --set data.train_limit=64 --set data.test_limit=100 --threads 1"
q() { sqlite3 "$1" "$2"; }
sum() { cat "$@" 2>/dev/null | sha256sum | cut -c1-64; }

# ---- NaN / Inf -------------------------------------------------------------------

# An absurd learning rate: the loss is NaN within epoch 1.
run "$L" train configs/mnist_two_conv.yaml $SMALL --set train.optimizer.lr=1e6 --set train.epochs=2 \
    --set train.batch_size=16 --db "$T/nan.db"
expect_rc 5 "lr=1e6: the run stops on a NaN loss"
expect_err "numeric error: loss became NaN in epoch 1 at step " "the message names epoch and step"
expect_err "try a smaller learning rate" "and says what to try"
check_eq "its status is 'failed'" "$(q "$T/nan.db" "SELECT status FROM runs WHERE id = 1")" failed
check_eq "the DB records why" "$(q "$T/nan.db" "SELECT error LIKE 'loss became NaN in epoch 1 at step %' FROM runs")" 1
check_eq "no checkpoint of the poisoned epoch" "$(q "$T/nan.db" "SELECT count(*) FROM checkpoints")" 0
check_eq "no metrics of it either" "$(q "$T/nan.db" "SELECT count(*) FROM metrics")" 0

# The last step of an epoch poisons the weights after its own (finite) loss: the
# epoch's test loss is NaN. It used to be committed, as the best checkpoint.
run "$L" train configs/mnist_dense.yaml $SMALL --set data.train_limit=1 --set train.batch_size=1 \
    --set train.optimizer.lr=1e33 --set train.epochs=2 --db "$T/poison.db"
expect_rc 5 "weights poisoned by the last step of epoch 1"
expect_err "after the last step of epoch 1 (step 1): epoch 1 is not recorded" "the message names epoch and step"
check_eq "no checkpoint, so no NaN 'best'" "$(q "$T/poison.db" "SELECT count(*) FROM checkpoints")" 0
check_eq "status 'failed'" "$(q "$T/poison.db" "SELECT status FROM runs")" failed

# Epoch 1 is fine (warm-up keeps its lr at 1e-3 of the base), epoch 2 diverges:
# epoch 1 and its checkpoint are kept, nothing of epoch 2 is.
run "$L" train configs/mnist_dense.yaml $SMALL --set train.batch_size=64 --set train.optimizer.lr=1e10 \
    --set train.epochs=3 --set "train.schedule={type: constant, warmup_epochs: 1}" --db "$T/kept.db"
expect_rc 5 "divergence in epoch 2"
expect_err "epoch 2" "the message names epoch 2"
check_eq "epochs_done stays 1" "$(q "$T/kept.db" "SELECT epochs_done FROM runs")" 1
check_eq "the checkpoint of epoch 1 is kept, none later" "$(q "$T/kept.db" "SELECT group_concat(epoch) FROM checkpoints")" 1
check_eq "metrics of epoch 1 only" "$(q "$T/kept.db" "SELECT max(epoch) FROM metrics")" 1
check_eq "status 'failed'" "$(q "$T/kept.db" "SELECT status FROM runs")" failed
run "$L" eval --run 1 --db "$T/kept.db" --threads 1
expect_rc 0 "the kept checkpoint still evaluates"

# ---- runs databases --------------------------------------------------------------

# Not a database at all, and another application's SQLite file: refused untouched.
printf 'this is a shopping list, not a database\n' >"$T/list.db"
cp "$T/nan.db" "$T/foreign.db"
q "$T/foreign.db" "PRAGMA journal_mode=DELETE; PRAGMA application_id = 1234;" >/dev/null
before=$(sum "$T/list.db")
run "$L" train configs/mnist_two_conv.yaml $SMALL --set train.epochs=1 --db "$T/list.db"
expect_rc 4 "a text file as the runs DB"
expect_err "not a SQLite database" "says it is not a database"
check_eq "the file is left as it was" "$(sum "$T/list.db")" "$before"
check "no -wal/-shm/-journal beside it" test ! -e "$T/list.db-wal" -a ! -e "$T/list.db-shm" -a ! -e "$T/list.db-journal"
sqlite3 "$T/other.db" "CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL); INSERT INTO invoices VALUES (1, 9.5);"
before=$(sum "$T/other.db")
run "$L" train configs/mnist_two_conv.yaml $SMALL --set train.epochs=1 --db "$T/other.db"
expect_rc 4 "another application's SQLite file"
expect_err "no loupe schema" "says it has no loupe schema"
check_eq "the file is left as it was" "$(sum "$T/other.db")" "$before"
run "$L" runs list --db "$T/list.db"
expect_rc 4 "runs list on a text file"

if [ "$(id -u)" = 0 ] && mkdir -p "$T/full" "$T/rw" "$T/ro" && mount -t tmpfs -o size=200k tmpfs "$T/full" 2>/dev/null; then
    E2E_MOUNTS="$T/full"
    # Full disk: the two-conv checkpoint (~220 KB with momentum) cannot fit in 200 KB.
    run "$L" train configs/mnist_two_conv.yaml $SMALL --set train.epochs=2 --db "$T/full/runs.db"
    expect_rc 4 "a full disk (200 KB tmpfs)"
    expect_err "the disk is full" "says the disk is full"
    check_eq "the DB stays consistent" "$(q "$T/full/runs.db" "PRAGMA integrity_check")" ok
    check_eq "no epoch half-recorded" "$(q "$T/full/runs.db" "SELECT count(*) FROM checkpoints") $(q "$T/full/runs.db" "SELECT count(*) FROM metrics")" "0 0"
    check_eq "the run is marked failed" "$(q "$T/full/runs.db" "SELECT status FROM runs")" failed
    umount "$T/full" && E2E_MOUNTS=
    # Read-only: a read-only bind mount (root ignores file modes, not mounts).
    cp "$T/kept.db" "$T/rw/runs.db"
    before=$(sum "$T/rw/runs.db")
    if mount --bind "$T/rw" "$T/ro" 2>/dev/null && mount -o remount,ro,bind "$T/ro" 2>/dev/null; then
        E2E_MOUNTS="$T/ro"
        run "$L" train configs/mnist_two_conv.yaml $SMALL --set train.epochs=1 --db "$T/ro/runs.db"
        expect_rc 4 "a runs DB on a read-only mount"
        expect_err "read-only" "says it is read-only"
        run "$L" runs list --db "$T/ro/runs.db"
        expect_rc 0 "runs list still reads it"
        umount "$T/ro" && E2E_MOUNTS=
        check_eq "the file is left as it was" "$(sum "$T/rw/runs.db")" "$before"
    else
        todo_skip "read-only runs DB" "mount --bind not permitted here"
    fi
else
    todo_skip "full disk and read-only mount checks" "mounting needs root (test_runsdb covers both with RLIMIT_FSIZE and setuid)"
fi

# ---- a checkpoint that does not fit the model ------------------------------------

run "$L" eval --run 1 --db "$T/kept.db" --threads 1 --set model.layers.1.units=32
expect_rc 2 "eval of a checkpoint with a changed model"
expect_err "tensor 'fc1.weight' has shape [128, 784], model expects [32, 784]" "names the tensor and both shapes"
q "$T/kept.db" "UPDATE runs SET config_yaml = replace(config_yaml, 'units: 10', 'units: 12')"
run "$L" eval --run 1 --db "$T/kept.db" --threads 1
expect_rc 2 "eval after the recorded config was edited"
expect_err "model expects [12" "names the shape the model expects"

# ---- out of memory ---------------------------------------------------------------

run "$L" train configs/mnist_two_conv.yaml $SMALL --set train.batch_size=100000000 --db "$T/oom.db"
expect_rc 2 "batch_size=100000000"
expect_err "train.batch_size: expected an integer from 1 to 65536, found 100000000" "is a config error"
# 512 filters over a 626 x 626 padded image: 0.8 GB of activations per sample, and a
# step runs slices of at least 8 samples. Under a 4 GB address-space limit the arena
# certainly cannot be had, whatever the kernel's overcommit policy.
(ulimit -v 4000000; "$L" train configs/mnist_two_conv.yaml $SMALL --set model.layers.0.padding=300 \
    --set model.layers.0.filters=512 --db "$T/oom.db" >"$T/out" 2>"$T/err")
RC=$?
expect_rc 1 "an arena that cannot be allocated"
expect_err "out of memory: cannot allocate" "says how much it wanted"
expect_err "MB of activations for slices of 8 samples (batch 500, 1 thread)" "and for which slices (batch: the larger of training and evaluation)"
# A model input that does not fit the images: a config error at model.input, in
# train, bench and eval alike (line 3, column 10 of the file below).
printf 'name: wrong_input\nmodel:\n  input: [3, 28, 28]\n  layers:\n    - {op: flatten}\n    - {op: dense, units: 10}\n  loss: softmax_cross_entropy\n' >"$T/wrong_input.yaml"
for cmd in train bench; do
    run "$L" $cmd "$T/wrong_input.yaml" $SMALL --db "$T/wrong_input.db"
    expect_rc 2 "$cmd: model.input [3, 28, 28] for MNIST"
    expect_err "$T/wrong_input.yaml:3:10: model.input: [3, 28, 28] is 2352 values per image, but mnist images are 1 x 28 x 28" \
        "$cmd: the error names file:line:col of model.input and both sizes"
done
# The same 784 values in another shape would read the pixels in another order.
sed 's/\[3, 28, 28\]/[4, 14, 14]/' "$T/wrong_input.yaml" >"$T/reshaped.yaml"
run "$L" train "$T/reshaped.yaml" $SMALL --db "$T/wrong_input.db"
expect_rc 2 "train: model.input [4, 14, 14] (784 values, not MNIST's shape)"
expect_err "$T/reshaped.yaml:3:10: model.input: [4, 14, 14] has the 784 values of a mnist image but not its shape: write [1, 28, 28]" \
    "the error names model.input and the shapes that would fit"
# Other keys whose value makes a run fail are named at their file:line:col too.
printf 'name: keyed\nmodel:\n  input: [784]\n  layers: [{op: dense, units: 10}]\n  loss: softmax_cross_entropy\ndata: {dir: %s/none}\ntracking: {db: %s/none/r.db}\n' \
    "$T" "$T" >"$T/keyed.yaml"
run "$L" train "$T/keyed.yaml" --set data.train_limit=64 --threads 1
expect_rc 3 "train: a data.dir without the files"
expect_err "$T/keyed.yaml:6:13: data.dir: MNIST not found" "the error names file:line:col of data.dir"
sed "s|{dir: $T/none}|{dir: $MNIST}|" "$T/keyed.yaml" >"$T/keyed_db.yaml"
run "$L" train "$T/keyed_db.yaml" $SMALL
expect_rc 4 "train: a tracking.db in a missing directory"
expect_err "$T/keyed_db.yaml:7:16: tracking.db: runs database '$T/none/r.db': cannot open" \
    "the error names file:line:col of tracking.db"

# Address-space limits from too small to enough: every one ends with a result or
# "out of memory", never a hang (exit 137 would be the KILL of the 60 s timeout).
# Known limitation, left out on purpose: between ~300 and ~600 MB OpenBLAS itself can
# spin forever in blas_memory_alloc retrying an mmap of a further 128 MB buffer, during
# a GEMM or in its exit handler, depending on how much address space its own worker
# thread took (upstream issue; docs/robustness.md). Only the limit loupe's start-up
# reservation catches is a reliable test.
for kb in 150000; do
    (ulimit -v $kb; timeout -s KILL 60 "$L" train configs/mnist_two_conv.yaml --set data.dir="$MNIST" \
        --set data.test_limit=100 --set train.epochs=1 --threads 1 --db "$T/ulimit.db" >"$T/out" 2>"$T/err")
    RC=$?
    if [ "$RC" -eq 0 ] || { [ "$RC" -eq 1 ] && grep -q "out of memory" "$T/err"; }; then
        ok "ulimit -v $kb: exit $RC ($(tail -n 1 "$T/err" | cut -c1-80))"
    else
        bad "ulimit -v $kb: exit $RC (137: hung and was killed)"
        last_output
    fi
done

e2e_finish
