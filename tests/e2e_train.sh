#!/bin/sh
# e2e_train.sh - the CLI end to end on real MNIST: train (learning must work),
# summary, the runs commands, eval/predict/export round trips, and a table of bad
# invocations and configs with their exit codes and file:line:col messages.
#
#   LOUPE_BIN=bin/loupe LOUPE_BUILD=build sh tests/e2e_train.sh
. "$(dirname "$0")/lib_e2e.sh"
e2e_init e2e_train
DB=$T/runs.db

# ---- (a) train the two-conv net on 6,000 images, 2 epochs: well above chance ----
run "$L" train configs/mnist_two_conv.yaml --set data.train_limit=6000 --set train.epochs=2 \
    --set data.augment.shift=0 --threads 2 --db "$DB" --json
expect_rc 0 "train two-conv on 6000 MNIST images, 2 epochs"
cp "$T/out" "$T/train1.json"
check_eq "train --json: status" "$(json_field status "$T/train1.json")" completed
check_eq "train --json: run id" "$(json_field run_id "$T/train1.json")" 1
check_eq "train --json: epochs" "$(json_field epochs "$T/train1.json")" 2
check_eq "train --json: params" "$(json_field params "$T/train1.json")" 27562
ACC1=$(json_field final_test_acc "$T/train1.json")
check_num "two-conv learns: final test accuracy on 10,000 images" "$ACC1" '>=' 0.90
expect_err "epoch 2/2" "train prints one line per epoch on stderr (not a terminal)"

# A second, different run (dense, tiny) for compare and list.
run "$L" train configs/mnist_dense.yaml --set data.train_limit=2000 --set data.test_limit=2000 \
    --set train.epochs=3 --set train.optimizer.lr=0.02 --threads 2 --db "$DB" --json --quiet
expect_rc 0 "train dense on 2000 images, 3 epochs"
cp "$T/out" "$T/train2.json"
check_eq "dense run id" "$(json_field run_id "$T/train2.json")" 2
check_num "dense learns too" "$(json_field final_test_acc "$T/train2.json")" '>=' 0.80
check "--quiet prints no epoch lines" test ! -s "$T/err"

# ---- (b) summary: both models side by side ----
run "$L" summary configs/mnist_dense.yaml configs/mnist_two_conv.yaml
expect_rc 0 "summary of two configs"
expect_out "109,386" "summary: dense has 109,386 parameters"
expect_out "27,562" "summary: two-conv has 27,562 parameters"
expect_out "3.97x" "summary: ratio 109386/27562 = 3.97x"
expect_out "conv2          conv2d                 [16, 11, 11]          1,168" "summary: conv2 row (shape, params)"

# ---- (c) the runs commands ----
run "$L" runs list --db "$DB"
expect_rc 0 "runs list"
check_eq "runs list: one line per run plus header" "$(wc -l <"$T/out" | tr -d ' ')" 3
check "runs list: run 1 completed with 2 epochs" \
    grep -Eq '^ +1  mnist_two_conv +completed +2 ' "$T/out"
check "runs list: run 2 completed with 3 epochs" \
    grep -Eq '^ +2  mnist_dense +completed +3 ' "$T/out"

run "$L" runs list --db "$DB" --json --order-by best_test_acc --asc
expect_rc 0 "runs list --json --order-by best_test_acc --asc"
check "runs list --json: two objects, lower accuracy (dense) first" \
    grep -Eq '^\[\{"id":2,.*\},\{"id":1,.*\}\]$' "$T/out"

run "$L" runs list --db "$DB" --param train.optimizer.lr=0.02
expect_rc 0 "runs list --param"
check "runs list --param train.optimizer.lr=0.02 keeps only run 2" \
    sh -c "grep -q mnist_dense '$T/out' && ! grep -q mnist_two_conv '$T/out'"

run "$L" runs show 1 --db "$DB"
expect_rc 0 "runs show 1"
expect_out "run 1: mnist_two_conv  [completed]" "runs show: title with status"
expect_out "data.train_limit                 6000" "runs show: the override is a recorded setting"
check_eq "runs show: 2 epoch rows" "$(grep -Ec '^ +[12] +[0-9.]+ +[0-9.]+% ' "$T/out")" 2
check_eq "runs show: 2 checkpoints, the last one best" \
    "$(grep -Ec '^  epoch +[12] .*bytes' "$T/out"):$(grep -Ec '^  epoch +2 .* best$' "$T/out")" 2:1
expect_out "# configs/mnist_two_conv.yaml with --set data.train_limit=6000" "runs show: recorded config names file and overrides"
# Two different checkpoints must show two different checksums.
NCRC=$(sqlite3 "$DB" "SELECT count(DISTINCT checksum) || ' ' || count(DISTINCT weights) FROM checkpoints WHERE run_id = 1")
check_eq "checkpoints of epochs 1 and 2 have different checksums" "$NCRC" "2 2"

run "$L" runs compare 1 2 --db "$DB"
expect_rc 0 "runs compare 1 2"
check "runs compare: name differs" grep -Eq '^name +mnist_two_conv +mnist_dense$' "$T/out"
check "runs compare: lr differs" grep -Eq '^train.optimizer.lr +0.05 +0.02$' "$T/out"
check "runs compare: equal settings are not listed" sh -c "! grep -q '^train.seed' '$T/out'"
check "runs compare: epochs 2 vs 3" grep -Eq '^epochs +2 +3$' "$T/out"

run "$L" runs export 1 --csv --db "$DB"
expect_rc 0 "runs export 1 --csv"
check_eq "export --csv: header" "$(head -n 1 "$T/out")" "run_id,epoch,step,split,name,value,wall_time"
check_eq "export --csv: 7 metrics x 2 epochs" "$(tail -n +2 "$T/out" | wc -l | tr -d ' ')" 14
check_eq "export --csv: epochs 1 and 2, 7 rows each" \
    "$(tail -n +2 "$T/out" | cut -d, -f2 | sort | uniq -c | tr -s ' ' | tr '\n' ';')" " 7 1; 7 2;"
CSV_ACC=$(grep '^1,2,[0-9]*,test,acc,' "$T/out" | cut -d, -f6)
check_num "export --csv: epoch 2 test acc equals train --json" "$CSV_ACC" '==' "$ACC1"
check "export --csv: step of epoch 2 is 2 x ceil(6000/64) = 188" grep -q '^1,2,188,test,acc,' "$T/out"

run "$L" runs export 2 --json --db "$DB"
expect_rc 0 "runs export 2 --json"
check_eq "export --json: 7 metrics x 3 epochs" "$(grep -c '"epoch": ' "$T/out")" 21
expect_out '"params": {' "export --json: has the settings"
expect_out '"status": "completed"' "export --json: has the run"

# Plain sqlite3 users see the same thing.
check_eq "sqlite3: run_summary view" \
    "$(sqlite3 "$DB" "SELECT group_concat(s, ' ') FROM (SELECT id||':'||status||':'||epochs||':'||epochs_planned AS s FROM run_summary ORDER BY id)")" \
    "1:completed:2:2 2:completed:3:3"

# ---- (d) eval / predict / export ----
BEST=$(sqlite3 "$DB" "SELECT printf('%.6f', m.value) FROM metrics m JOIN checkpoints c
    ON c.run_id = m.run_id AND c.epoch = m.epoch WHERE m.run_id = 1 AND c.is_best = 1
    AND m.split = 'test' AND m.name = 'acc'")
run "$L" eval --run 1 --db "$DB" --json
expect_rc 0 "eval --run 1"
cp "$T/out" "$T/eval1.json"
check_eq "eval --run 1: best checkpoint re-evaluates to its recorded accuracy" \
    "$(json_field test_acc "$T/eval1.json")" "$BEST"
check_eq "eval --run 1: on the 10,000 test images" "$(json_field images "$T/eval1.json")" 10000

run "$L" eval --run 1 --checkpoint 1 --db "$DB" --json
expect_rc 0 "eval --run 1 --checkpoint 1"
check_eq "eval of epoch 1's checkpoint gives epoch 1's accuracy" "$(json_field test_acc "$T/out")" \
    "$(sqlite3 "$DB" "SELECT printf('%.6f', value) FROM metrics WHERE run_id=1 AND epoch=1 AND split='test' AND name='acc'")"

run "$L" predict --run 1 --index 0 --db "$DB"
expect_rc 0 "predict --run 1 --index 0"
check "predict: prints a class and the true label (test image 0 is a 7)" \
    grep -Eq '^class 7 \(p = [01]\.[0-9]{4}\), true label 7: correct$' "$T/out"
check_eq "predict: one line per class" "$(grep -Ec '^ +[0-9]  [01][.][0-9]{4} ' "$T/out")" 10
run "$L" predict --run 1 --index 0 --db "$DB" --json
check "predict --json: class, 10 probabilities summing to 1, label" \
    awk -F'[][]' '/"class":7,/ && /"label":7/ { n = split($2, p, ","); s = 0; for (i = 1; i <= n; i++) s += p[i];
        ok = (n == 10 && s > 0.999 && s < 1.001) } END { exit !ok }' "$T/out"

run "$L" export 1 --db "$DB" -o "$T/m.safetensors"
expect_rc 0 "export 1 -o m.safetensors"
expect_out "8 tensors, 27562 parameters (run 1, epoch 2)" "export: says what it wrote"
check "export: safetensors header names conv1.weight as F32 [8,1,3,3]" \
    grep -aq '"conv1.weight":{"dtype":"F32","shape":\[8,1,3,3\]' "$T/m.safetensors"
run "$L" eval configs/mnist_two_conv.yaml --weights "$T/m.safetensors" --json
expect_rc 0 "eval CONFIG --weights m.safetensors"
check_eq "weights file gives the same accuracy as the run" "$(json_field test_acc "$T/out")" "$BEST"
check_eq "weights file gives the same loss as the run" "$(json_field test_loss "$T/out")" \
    "$(json_field test_loss "$T/eval1.json")"
run "$L" predict configs/mnist_two_conv.yaml --weights "$T/m.safetensors" --index 0
expect_out "class 7" "predict CONFIG --weights: same class"

# --init-weights: start a new run from the exported file: its first epoch starts
# from 95% instead of 10% (one epoch on 500 images at a tiny lr keeps it there).
run "$L" train configs/mnist_two_conv.yaml --init-weights "$T/m.safetensors" --set data.train_limit=500 \
    --set train.epochs=1 --set train.optimizer.lr=0.0001 --set data.augment.shift=0 --db "$DB" --json --quiet --threads 2
expect_rc 0 "train --init-weights m.safetensors"
check_num "--init-weights: starts from the trained weights" "$(json_field final_test_acc "$T/out")" '>=' 0.90

# ---- (e) bad invocations and configs: exit status and message ----
# fixture | expected exit | text the message must contain (file:line:col)
BAD=$ROOT/tests/fixtures/bad
while IFS='|' read -r f code msg; do
    [ -n "$f" ] || continue
    run "$L" train "tests/fixtures/bad/$f" --db "$T/bad.db"
    expect_rc "$code" "bad config $f"
    expect_err "$msg" "bad config $f: message"
done <<EOF
unknown_key.yaml|2|tests/fixtures/bad/unknown_key.yaml:9:1: unknown key 'trian': did you mean 'train'?
wrong_type.yaml|2|tests/fixtures/bad/wrong_type.yaml:9:17: train.epochs: expected an integer, found '3'
negative_size.yaml|2|tests/fixtures/bad/negative_size.yaml:6:42: node 'conv1' (conv2d): filters must be at least 1, got -8
negative_batch.yaml|2|tests/fixtures/bad/negative_batch.yaml:10:15: train.batch_size: expected an integer from 1 to 65536, found -64
unknown_op.yaml|2|tests/fixtures/bad/unknown_op.yaml:6:7: node 'conv1': unknown op 'convv2d': did you mean 'conv2d'?
unknown_attr.yaml|2|tests/fixtures/bad/unknown_attr.yaml:6:56: node 'conv1' (conv2d): unknown attribute 'strid': did you mean 'stride'?
kernel_too_big.yaml|2|tests/fixtures/bad/kernel_too_big.yaml:6:53: node 'conv1' (conv2d): kernel 30x30 is larger than the 28x28 input
shrinks_to_nothing.yaml|2|tests/fixtures/bad/shrinks_to_nothing.yaml:8:53: node 'conv2' (conv2d): kernel 14x14 is larger than the 13x13 input
dense_unflattened.yaml|2|tests/fixtures/bad/dense_unflattened.yaml:6:7: node 'fc1' (dense): expects a flat [features] input, got [1, 28, 28]: add a
yaml_syntax.yaml|2|tests/fixtures/bad/yaml_syntax.yaml:5:9: YAML syntax error: did not find expected ',' or ']'
duplicate_key.yaml|2|tests/fixtures/bad/duplicate_key.yaml:11:3: duplicate key 'epochs' (first written at line 10, column 3)
bad_optimizer.yaml|2|tests/fixtures/bad/bad_optimizer.yaml:10:21: train.optimizer.type: unknown value 'sgdd': did you mean 'sgd'?
alias.yaml|2|tests/fixtures/bad/alias.yaml:4:10: YAML anchors (&shape) are not supported
missing_model.yaml|2|tests/fixtures/bad/missing_model.yaml:2:1: missing 'model'
no_such_file.yaml|3|cannot open tests/fixtures/bad/no_such_file.yaml: No such file or directory
EOF
check "no bad config created a runs database" test ! -e "$T/bad.db"
check "every bad fixture is in the table" test "$(ls "$BAD"/*.yaml | wc -l)" -eq 14

# The same shape check through summary (no training, same message).
run "$L" summary configs/mnist_two_conv.yaml tests/fixtures/bad/kernel_too_big.yaml
expect_rc 2 "summary with one bad config"
expect_err "kernel_too_big.yaml:6:53:" "summary: names the bad file's line:col"

# command line | expected exit | text in stderr
while IFS='|' read -r args code msg; do
    [ -n "$args" ] || continue
    # shellcheck disable=SC2086
    run "$L" $args
    expect_rc "$code" "loupe $args"
    expect_err "$msg" "loupe $args: message"
done <<EOF
train configs/mnist_dense.yaml --set train.epochz=3|2|--set train.epochz=3: unknown key 'train.epochz': did you mean 'epochs'?
train configs/mnist_dense.yaml --set train.epochs=abc|2|--set train.epochs=abc: train.epochs: expected an integer, found 'abc'
train configs/mnist_dense.yaml --set train.epochs|2|--set expects key.path=value, got 'train.epochs'
train configs/mnist_dense.yaml --set =3|2|--set =3: expected key.path=value
train configs/mnist_dense.yaml --set model.layers.99.units=3|2|'99' is not an index of a list of 6 items
train configs/mnist_dense.yaml --set train.batch_size=0|2|train.batch_size: expected an integer from 1 to 65536, found 0
train configs/mnist_dense.yaml --threads 0|2|--threads expects a whole number from 1 to 1024, got '0'
train configs/mnist_dense.yaml --threads two|2|--threads expects a whole number from 1 to 1024, got 'two'
train configs/mnist_dense.yaml --threads|2|option --threads needs a value
frobnicate|2|unknown command 'frobnicate'
train configs/mnist_dense.yaml --frob|2|unknown option '--frob'
train|2|give a CONFIG.yaml (or --resume RUN)
train configs/mnist_dense.yaml configs/mnist_two_conv.yaml|2|one config at a time
train configs/mnist_dense.yaml --resume 1|2|give either a config or --resume RUN, not both
train --resume x|2|--resume expects a run id, got 'x'
train configs/mnist_dense.yaml --set data.dir=$T/nowhere --db $T/bad.db|3|MNIST not found: no $T/nowhere/train-images-idx3-ubyte
train --resume 1 --db $DB|2|run 1 is already completed
train --resume 99 --db $DB|2|no run 99 in
runs frob --db $DB|2|unknown subcommand 'frob'
runs show 99 --db $DB|2|no run 99 in
runs show abc --db $DB|2|unexpected argument 'abc'
runs export 1 --db $DB|2|export needs --csv or --json
runs list --db $T/nowhere.db|3|runs database '$T/nowhere.db' does not exist
runs list --db $ROOT/configs/mnist_dense.yaml|4|the file is not a SQLite database
eval --run 1 --checkpoint 7 --db $DB|2|run 1 has no checkpoint of epoch 7
eval configs/mnist_dense.yaml|2|a config needs --weights FILE.safetensors
eval configs/mnist_dense.yaml --weights $T/m.safetensors|2|tensor 'fc1.weight' has shape [64, 400], model expects [128, 784]
eval configs/mnist_two_conv.yaml --weights $T/nowhere.safetensors|3|cannot open $T/nowhere.safetensors
eval configs/mnist_two_conv.yaml --weights $ROOT/configs/mnist_dense.yaml|3|configs/mnist_dense.yaml
predict --run 1 --index 10000 --db $DB|2|--index 10000: the test set has 10000 images
predict --run 1 --db $DB|2|give exactly one of --index I or --image FILE
export 1 --db $DB|2|give the output file with -o FILE.safetensors
EOF
check "no bad command created a database" test ! -e "$T/bad.db" -a ! -e "$T/nowhere.db"

# --help everywhere: exit 0, usage on stdout.
for c in train eval predict summary runs export ops gradcheck data; do
    run "$L" $c --help
    if [ "$RC" -eq 0 ] && grep -q "^usage: loupe $c" "$T/out"; then ok "loupe $c --help"; else bad "loupe $c --help"; last_output; fi
done

e2e_finish
