#!/bin/sh
# e2e_rerun.sh - `loupe rerun RUN` trains a run again from what it recorded and says
# whether it reproduces bit for bit (exit 0) or where it first differs (exit 1); every
# run records its data fingerprint and the loupe that built it; a resume on other data
# is refused.
#
#   LOUPE_BIN=bin/loupe LOUPE_BUILD=build sh tests/e2e_rerun.sh
. "$(dirname "$0")/lib_e2e.sh"
e2e_init e2e_rerun
DB=$T/rerun.db
# Shuffle, 2-pixel shifts and a cosine schedule are on in this config: all seeded.
run "$L" train configs/mnist_two_conv.yaml --set data.train_limit=2000 --set data.test_limit=300 \
    --set train.epochs=2 --db "$DB" --threads 1 --quiet
expect_rc 0 "run 1 trains"

check_eq "run 1 records its data: counts and shape" \
    "$(sq "SELECT data_train_count || ' ' || data_test_count || ' ' || data_shape FROM runs WHERE id = 1")" "2000 300 1x28x28"
check_eq "and a SHA-256 of it (64 hex digits)" "$(sq "SELECT length(data_sha256) FROM runs WHERE id = 1")" 64
check_eq "and the loupe that built it" "$(sq "SELECT loupe_version || ' ' || (compiler LIKE 'gcc %' OR compiler LIKE 'clang %') FROM runs WHERE id = 1")" "0.1 1"
if commit=$(git -C "$ROOT" describe --always --dirty --abbrev=12 2>/dev/null); then
    check_eq "its commit is this tree's" "$(sq "SELECT loupe_commit FROM runs WHERE id = 1")" "$commit"
fi
check "and its flags" test -n "$(sq "SELECT cflags FROM runs WHERE id = 1 AND cflags LIKE '%-O%'")"

run "$L" rerun 1 --db "$DB" --quiet
expect_rc 0 "rerun of run 1 reproduces it"
expect_out "rerun of run 1 as run 2: identical: 10 metrics of 2 epochs and the last checkpoint" "says what matched"
check_eq "run 2 says it reruns run 1" "$(sq "SELECT value FROM run_params WHERE run_id = 2 AND key = 'run.rerun_of'")" 1
check_eq "with the same config text and data" \
    "$(sq "SELECT count(DISTINCT config_hash) || ' ' || count(DISTINCT data_sha256) FROM runs WHERE id IN (1, 2)")" "1 1"

# One metric off by one unit in the last place: found, named, exit 1.
sq "UPDATE metrics SET value = value * (1 + 1e-15) WHERE run_id = 1 AND epoch = 2 AND split = 'test' AND name = 'loss'"
run "$L" rerun 1 --db "$DB" --quiet
expect_rc 1 "a metric that differs in its last bits"
expect_out "first difference at epoch 2 (step 64), test/loss:" "names the epoch, step and metric"
expect_err "original run 1: 1 threads, loupe 0.1" "shows how each run was built"

# Another learning rate in the recorded config: differs from the first epoch on.
sq "UPDATE runs SET config_yaml = replace(config_yaml, 'lr: 0.05', 'lr: 0.051') WHERE id = 2"
run "$L" rerun 2 --db "$DB" --quiet --json
expect_rc 1 "a changed config"
expect_out '"identical":false,"difference":"first difference at epoch 1' "differs at epoch 1 (JSON)"

# Only completed runs are compared.
sq "UPDATE runs SET status = 'interrupted' WHERE id = 1"
run "$L" rerun 1 --db "$DB"
expect_rc 2 "rerun of an interrupted run"
expect_err "run 1 is interrupted: only a completed run can be compared" "says why"

# Resuming on other data is refused: the run would not be the same run.
sq "UPDATE runs SET data_sha256 = substr('0000000000000000' || data_sha256, 1, 64) WHERE id = 1"
run "$L" train --resume 1 --db "$DB" --threads 1 --quiet
expect_rc 3 "resume on data whose fingerprint differs"
expect_err "run 1 was trained on data with sha256 0000000000000000..., but the data found now (2000 training + 300 test images of 1x28x28)" \
    "names both fingerprints"
e2e_finish
