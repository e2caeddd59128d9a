#!/bin/sh
# Train each shipped MNIST config with seeds 1, 2 and 3 on full MNIST and print the
# final and best test accuracy of every run (docs/accuracy.md keeps the figures).
# Usage: sh scripts/accuracy.sh [BIN] [DB]   (make accuracy)
set -eu
BIN=${1:-bin/loupe}
DB=${2:-accuracy.db}
CONFIGS=${ACCURACY_CONFIGS:-"mnist_dense mnist_one_conv mnist_two_conv mnist_two_conv_bn"}
SEEDS=${ACCURACY_SEEDS:-"1 2 3"}
printf '%-18s %5s %8s %8s %8s %9s\n' config seed epochs final best seconds
for c in $CONFIGS; do
    for s in $SEEDS; do
        out=$("$BIN" train "configs/$c.yaml" --set "train.seed=$s" --db "$DB" --quiet --json)
        echo "$out" | sed -e 's/[{}"]//g' | tr ',' '\n' | awk -F: -v c="$c" -v s="$s" '
            {v[$1]=$2} END {printf "%-18s %5s %8s %7.2f%% %7.2f%% %9.1f\n", c, s, v["epochs"],
            100*v["final_test_acc"], 100*v["best_test_acc"], v["wall_s"]}'
    done
done
