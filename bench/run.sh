#!/bin/sh
# bench/run.sh - loupe beside PyTorch, in one run: dense, one-conv, two-conv and
# two-conv with batch norm and dropout (mnist_two_conv_bn.yaml) at
# batch 16, 64 and 256 with 1 and 2 threads. Per row: training images/s over one
# full MNIST epoch, inference images/s over the 10,000 test images, peak RSS, and
# the loupe/PyTorch ratio; the median of BENCH_REPEAT runs (default 3) with the
# range. loupe and PyTorch runs alternate, so both see the same background load.
#
#   make bench                    # the whole table (about 10-15 minutes)
#   BENCH_QUICK=1 make bench      # batch 64 only, one run per row (about 2 minutes)
#
# Environment: LOUPE_BIN (default bin/loupe), BENCH_REPEAT, BENCH_NETS ("dense
# one_conv two_conv two_conv_bn"; BENCH_NETS="two_conv two_conv_bn" for the BN rows
# beside the plain net's), BENCH_BATCHES ("16 64 256"), BENCH_THREADS ("1 2"),
# BENCH_OUT (raw JSON lines; default a temporary file), PYTHON (/usr/bin/python3).
# PyTorch runs as the reference asks: OMP_NUM_THREADS=N OPENBLAS_NUM_THREADS=1, and
# with glibc told to keep freed memory (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_):
# otherwise its batch-1000 inference measures page faults, not arithmetic (0.9 s
# instead of 0.4 s here; docs/performance.md). loupe plans its buffers once.
# Both run with OMP_WAIT_POLICY=passive unless the environment sets it: with the
# default (spinning) policy a 2-thread team on these 2-core VMs collapses whenever any
# other process runs (loupe two-conv 63,000 -> 1,000 images/s, PyTorch 19,000 -> 300),
# and one such PyTorch epoch takes minutes. OMP_WAIT_POLICY=active make bench restores
# the spinning default on a quiet machine.
set -eu
cd "$(dirname "$0")/.."

LOUPE_BIN=${LOUPE_BIN:-bin/loupe}
PYTHON=${PYTHON:-/usr/bin/python3}
NETS=${BENCH_NETS:-"dense one_conv two_conv two_conv_bn"}
BATCHES=${BENCH_BATCHES:-"16 64 256"}
THREADS=${BENCH_THREADS:-"1 2"}
REPEAT=${BENCH_REPEAT:-3}
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    BATCHES=${BENCH_BATCHES:-64}
    REPEAT=${BENCH_REPEAT:-1}
fi
OUT=${BENCH_OUT:-$(mktemp /tmp/loupe-bench.XXXXXX)}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
: >"$OUT"

[ -x "$LOUPE_BIN" ] || { echo "bench: $LOUPE_BIN not built (run make)" >&2; exit 1; }
[ -f data/mnist/train-images-idx3-ubyte ] || [ -f data/mnist/train-images-idx3-ubyte.gz ] ||
    { echo "bench: MNIST missing (run make data)" >&2; exit 1; }
TORCH=1
if ! OMP_NUM_THREADS=1 "$PYTHON" -c 'import torch' 2>/dev/null; then
    TORCH=0
    echo "bench: PyTorch not found ($PYTHON -c 'import torch' failed): PyTorch rows skipped;" \
         "make bench-deps installs python3-torch" >&2
fi

echo "loupe bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs:" \
     "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')," \
     "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)}, OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-(unset)}"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews timings)"

for net in $NETS; do
    for b in $BATCHES; do
        for t in $THREADS; do
            r=1
            while [ "$r" -le "$REPEAT" ]; do
                [ -t 2 ] && printf '\r%-60s' "  $net batch $b threads $t run $r/$REPEAT" >&2
                # The SGD of bench/torch_ref.py (lr 0.01, momentum 0.9, constant), so
                # both sides train alike: the configs' 0.05 without their warm-up
                # diverges at batch 16 (speed is the same either way).
                line=$(OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=1 "$LOUPE_BIN" bench \
                       "configs/mnist_$net.yaml" --batch "$b" --threads "$t" \
                       --set train.optimizer.lr=0.01 --set train.optimizer.momentum=0.9) ||
                    { echo "bench: loupe failed on $net batch $b threads $t" >&2; exit 1; }
                echo "loupe $net $b $t $line" >>"$OUT"
                if [ "$TORCH" = 1 ]; then
                    line=$(OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=1 MALLOC_MMAP_THRESHOLD_=33554432 \
                           MALLOC_TRIM_THRESHOLD_=1073741824 "$PYTHON" bench/torch_ref.py \
                           --net "$net" --batch "$b" --threads "$t") ||
                        { echo "bench: PyTorch failed on $net batch $b threads $t" >&2; exit 1; }
                    echo "torch $net $b $t $line" >>"$OUT"
                fi
                r=$((r + 1))
            done
        done
    done
done
[ -t 2 ] && printf '\r%-60s\r' "" >&2
echo "load average at end:   $(cut -d' ' -f1-3 /proc/loadavg)"

"$PYTHON" - "$OUT" "$REPEAT" <<'EOF'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    who, net, b, t, js = line.split(" ", 4)
    rows.setdefault((net, int(b), int(t)), {}).setdefault(who, []).append(json.loads(js))

def stat(runs, key):
    v = [r[key] for r in runs]
    return statistics.median(v), min(v), max(v)

def cell(runs, key):
    if not runs: return "-"
    m, lo, hi = stat(runs, key)
    return f"{m:7.0f} ({lo:.0f}-{hi:.0f})" if len(runs) > 1 else f"{m:7.0f}"

print(f"\nmedian of {sys.argv[2]} run(s), range in parentheses; images/s; ratio = loupe / PyTorch (medians)\n")
hdr = (f"{'net':11} {'batch':>5} {'thr':>3} | {'loupe train':>21} {'torch train':>19} {'ratio':>6} |"
       f" {'loupe infer':>21} {'torch infer':>19} {'ratio':>6} | {'RSS MB loupe/torch':>18}")
print(hdr)
print("-" * len(hdr))
NETS = ["dense", "one_conv", "two_conv", "two_conv_bn"]
for (net, b, t), who in sorted(rows.items(), key=lambda kv: (NETS.index(kv[0][0]) if kv[0][0] in NETS else 9, kv[0][1], kv[0][2])):
    lo, to = who.get("loupe", []), who.get("torch", [])
    def ratio(key):
        if not lo or not to: return "-"
        return f"{stat(lo, key)[0] / stat(to, key)[0]:5.1f}x"
    rss = f"{stat(lo, 'peak_rss_mb')[0]:.0f}" if lo else "-"
    rss += " / " + (f"{stat(to, 'peak_rss_mb')[0]:.0f}" if to else "-")
    print(f"{net:11} {b:5} {t:3} | {cell(lo, 'train_images_per_s'):>21} {cell(to, 'train_images_per_s'):>19} "
          f"{ratio('train_images_per_s'):>6} | {cell(lo, 'infer_images_per_s'):>21} "
          f"{cell(to, 'infer_images_per_s'):>19} {ratio('infer_images_per_s'):>6} | {rss:>18}")
EOF
echo "raw results: $OUT"
