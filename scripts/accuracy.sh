#!/bin/sh
# Train each shipped config with seeds 1, 2 and 3 (full training and test sets) and
# print the final and best test accuracy of every run, then each config's median;
# Fashion-MNIST's two-conv net also in PyTorch with the same net and recipe
# (bench/torch_train_ref.py). docs/accuracy.md keeps the figures.
# Usage: sh scripts/accuracy.sh [BIN] [DB]   (make accuracy)
#   ACCURACY_CONFIGS="mnist_two_conv fashion_two_conv"  a subset of configs
#   ACCURACY_SEEDS="1 2 3"                              the seeds
#   ACCURACY_TORCH=0                                    no PyTorch rows
set -eu
BIN=${1:-bin/loupe}
DB=${2:-accuracy.db}
CONFIGS=${ACCURACY_CONFIGS:-"mnist_dense mnist_one_conv mnist_two_conv mnist_two_conv_bn fashion_two_conv"}
SEEDS=${ACCURACY_SEEDS:-"1 2 3"}
TORCH=${ACCURACY_TORCH:-1}
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT

# row NAME SEED JSON: one table line from a --json summary (loupe's or torch_train_ref's)
row() {
    echo "$3" | sed -e 's/[{}"]//g' | tr ',' '\n' | awk -F: -v c="$1" -v s="$2" '
        {gsub(/ /, "", $1); gsub(/ /, "", $2); v[$1]=$2}
        END {printf "%-24s %5s %8s %7.2f%% %7.2f%% %9.1f\n", c, s, v["epochs"],
             100*v["final_test_acc"], 100*v["best_test_acc"], v["wall_s"]}' | tee -a "$OUT"
}

# median of the final accuracies of NAME's rows
median() {
    awk -v c="$1" '$1 == c {sub(/%/, "", $4); print $4}' "$OUT" | sort -n |
        awk -v c="$1" '{a[NR]=$1} END {if (NR) printf "%-24s %5s %8s %7.2f%%   (median of %d seeds)\n", c,
            "med", "", NR % 2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2, NR}'
}

printf '%-24s %5s %8s %8s %8s %9s\n' config seed epochs final best seconds
for c in $CONFIGS; do
    for s in $SEEDS; do
        row "$c" "$s" "$("$BIN" train "configs/$c.yaml" --set "train.seed=$s" --db "$DB" --quiet --json)"
    done
    median "$c"
    if [ "$c" = fashion_two_conv ] && [ "$TORCH" = 1 ]; then
        if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
            echo "fashion_two_conv (torch): skipped, no PyTorch (make accuracy-deps installs python3-torch)"
            continue
        fi
        for s in $SEEDS; do
            row "fashion_torch" "$s" "$(OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 /usr/bin/python3 \
                bench/torch_train_ref.py --seed "$s" --threads 2)"
        done
        median fashion_torch
    fi
done
