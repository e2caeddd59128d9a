#!/bin/sh
# e2e_evaluation.sh - what a short real-MNIST training records about its evaluations
# (confusion matrix, per-class metrics, misclassified images) and how a user looks at
# it: `loupe runs show RUN --confusion`, the sparkline curves of `loupe runs show`, and
# `loupe viz curves RUN... -o FILE.svg`; unknown runs, runs without an evaluation and
# unwritable outputs fail clearly and leave no file.
#
#   LOUPE_BIN=bin/loupe LOUPE_BUILD=build sh tests/e2e_evaluation.sh
. "$(dirname "$0")/lib_e2e.sh"
e2e_init e2e_evaluation
DB=$T/runs.db
TEST_N=1000

run "$L" train configs/mnist_two_conv.yaml --set data.train_limit=2000 --set data.test_limit=$TEST_N \
    --set train.epochs=3 --db "$DB" --quiet
expect_rc 0 "run 1 trains 3 epochs"

# ---- what is stored ----
check_eq "every epoch stores a full 10x10 matrix" \
    "$(sq "SELECT group_concat(n) FROM (SELECT count(*) AS n FROM confusion WHERE run_id = 1 GROUP BY epoch)")" "100,100,100"
check_eq "whose cells sum to the test count" \
    "$(sq "SELECT group_concat(s) FROM (SELECT sum(count) AS s FROM confusion WHERE run_id = 1 GROUP BY epoch ORDER BY epoch)")" \
    "$TEST_N,$TEST_N,$TEST_N"
check_eq "its trace over the total is the recorded test accuracy, every epoch" \
    "$(sq "SELECT count(*) FROM metrics m WHERE m.run_id = 1 AND m.split = 'test' AND m.name = 'acc' AND
             abs(m.value - (SELECT 1.0 * sum(CASE WHEN true_label = pred_label THEN count END) / sum(count)
                            FROM confusion c WHERE c.run_id = 1 AND c.epoch = m.epoch)) < 1e-12")" 3
check_eq "one misclassified row per wrong image" \
    "$(sq "SELECT count(*) FROM (SELECT epoch, (SELECT count(*) FROM misclassified x WHERE x.run_id = 1 AND x.epoch = c.epoch) AS rows,
             sum(CASE WHEN true_label <> pred_label THEN count END) AS wrong FROM confusion c WHERE run_id = 1
             GROUP BY epoch) WHERE rows = wrong")" 3
check_eq "the row sums are the supports, the class counts of the test set" \
    "$(sq "SELECT count(*) FROM class_metrics k WHERE run_id = 1 AND support =
             (SELECT sum(count) FROM confusion c WHERE c.run_id = 1 AND c.epoch = k.epoch AND c.true_label = k.class)")" 30
check_eq "probabilities are probabilities, the predicted one the larger" \
    "$(sq "SELECT count(*) FROM misclassified WHERE NOT (pred_prob > 0 AND pred_prob <= 1 AND true_prob >= 0
             AND true_prob <= pred_prob)")" 0

# ---- runs show --confusion ----
run "$L" runs show 1 --db "$DB" --confusion
expect_rc 0 "runs show --confusion"
expect_out "confusion matrix of the test set after epoch 3: $TEST_N images" "shows the last evaluation"
# The bottom row: "total  c0 ... c9 | N recall precision f1 (macro ...)": N is the grand total.
total=$(sed -n 's/^ *total .*[|│] *\([0-9][0-9]*\) .*/\1/p' "$T/out")
check_eq "the matrix's grand total is the test count" "$total" "$TEST_N"
colsum=$(awk '/^ *total /{ s = 0; for (i = 2; i <= 11; i++) s += $i; print s }' "$T/out")
check_eq "and so is the sum of its column totals" "$colsum" "$TEST_N"
expect_out "worst misclassified" "lists the worst misclassified images"

run "$L" runs show 1 --db "$DB" --confusion --epoch 1 --ascii
expect_rc 0 "--epoch 1 --ascii"
expect_out "after epoch 1:" "shows epoch 1"
check "--ascii prints ASCII only" sh -c "! LC_ALL=C grep -q '[^ -~]' '$T/out'"

run "$L" runs show 1 --db "$DB" --confusion --epoch 9
expect_rc 2 "an epoch without an evaluation"
expect_err "run 1 has no test evaluation at epoch 9 (epochs with one: 1, 2, 3)" "says which epochs have one"
run "$L" runs show 7 --db "$DB" --confusion
expect_rc 2 "an unknown run"
expect_err "no run 7" "names it"

# ---- curves in runs show ----
run env LC_ALL=C.UTF-8 "$L" runs show 1 --db "$DB"
expect_out "curves (3 epochs):" "runs show draws the curves"
check "as Unicode sparklines in a UTF-8 locale" grep -q "loss  train  [▁▂▃▄▅▆▇█]\{3\}" "$T/out"
run env LC_ALL=C "$L" runs show 1 --db "$DB"
check "as ASCII in the C locale" sh -c "grep -q 'loss  train  [_.,=+*#-]\{3\}' '$T/out' && ! LC_ALL=C grep -q '[^ -~]' '$T/out'"

# ---- a run with nothing evaluated: a NaN in its first epoch ----
run "$L" train configs/mnist_two_conv.yaml --set data.train_limit=500 --set data.test_limit=100 \
    --set train.epochs=1 --set train.optimizer.lr=1e9 --db "$DB" --quiet
expect_rc 5 "run 2 diverges in epoch 1"
run "$L" runs show 2 --db "$DB" --confusion
expect_rc 2 "--confusion of a run with no evaluation"
expect_err "run 2 has no test evaluation yet" "says there is none yet"

# ---- viz curves ----
run "$L" train configs/mnist_two_conv.yaml --set data.train_limit=1000 --set data.test_limit=300 \
    --set train.epochs=2 --set train.optimizer.lr=0.02 --db "$DB" --quiet
expect_rc 0 "run 3 trains"
run "$L" viz curves 1 3 -o "$T/curves.svg" --db "$DB"
expect_rc 0 "viz curves of runs 1 and 3"
if command -v xmllint >/dev/null 2>&1; then
    check "is well-formed XML (xmllint)" xmllint --noout "$T/curves.svg"
else
    check "ends its document" grep -q '^</svg>$' "$T/curves.svg"
fi
check_eq "one polyline per curve: 2 runs x train/test x loss/acc" "$(grep -c '<polyline' "$T/curves.svg")" 8
check "with a legend naming both runs" sh -c "grep -q '>run 1 mnist_two_conv<' '$T/curves.svg' && grep -q '>run 3 mnist_two_conv<' '$T/curves.svg'"
check "and no external reference or script" sh -c "! grep -q -e '<script' -e 'href' '$T/curves.svg'"

run "$L" viz curves 1 -o "$T/no/such/dir/c.svg" --db "$DB"
expect_rc 3 "an output directory that does not exist"
expect_err "no/such/dir/c.svg" "names the path"
mkdir "$T/taken.svg"
run "$L" viz curves 1 -o "$T/taken.svg" --db "$DB"
expect_rc 3 "an output path that is a directory"
check "leaves no temporary file behind" sh -c "! ls '$T' | grep -q 'taken.svg.tmp'"
run "$L" viz curves 1 99 -o "$T/c99.svg" --db "$DB"
expect_rc 2 "an unknown run among them"
check "writes no file" test ! -e "$T/c99.svg"
run "$L" viz curves 2 -o "$T/c2.svg" --db "$DB"
expect_rc 2 "a run with no epoch"
expect_err "run 2 has no epoch recorded yet" "says so"
run "$L" viz curves 1 --db "$DB"
expect_rc 2 "no -o"

e2e_finish
