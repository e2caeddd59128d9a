#!/bin/sh
# scaling_model.sh [IMAGES_PER_S [BATCH [FLOATS]]] - the communication model of
# docs/scaling.md: per-step time of data-parallel training on N = 1..64 nodes with a
# fixed global batch, for 10 GbE and 100 Gb InfiniBand, from one node's measured
# training images/s (default 50,000: the two-conv net, 1 thread, batch 64, quiet
# machine, docs/performance.md) and the floats summed per step (default 27,565:
# 27,562 gradients + loss, correct, stop = 110,260 bytes).
#
#   compute(N)   = BATCH / (N * IMAGES_PER_S)              (perfect split of the batch)
#   ring(N)      = 2 (N-1)/N * bytes / bandwidth + 2 (N-1) * latency
#   tree(N)      = 2 (N-1)/N * bytes / bandwidth + 2 log2(N) * latency   (Rabenseifner)
#   speedup(N)   = compute(1) / (compute(N) + allreduce(N)); efficiency = speedup / N
IPS=${1:-50000}
BATCH=${2:-64}
FLOATS=${3:-27565}
awk -v ips="$IPS" -v b="$BATCH" -v floats="$FLOATS" 'BEGIN {
    bytes = 4 * floats
    nets[1] = "10 GbE (TCP): 1.25 GB/s, 30 us"; bw[1] = 1.25e9; lat[1] = 30e-6
    nets[2] = "100 Gb InfiniBand (EDR): 12.5 GB/s, 1.5 us"; bw[2] = 12.5e9; lat[2] = 1.5e-6
    c1 = b / ips
    printf "one node: %d images/s, batch %d: %.0f us of compute per step; %d bytes summed per step\n", ips, b, 1e6 * c1, bytes
    for (k = 1; k <= 2; k++) {
        printf "\n%s\n", nets[k]
        printf "%5s %12s %12s %12s %14s %14s\n", "N", "compute us", "ring us", "tree us", "speedup ring", "speedup tree"
        for (n = 2; n <= 64; n *= 2) {
            c = c1 / n
            bwt = 2 * (n - 1) / n * bytes / bw[k]
            ring = bwt + 2 * (n - 1) * lat[k]
            tree = bwt + 2 * (log(n) / log(2)) * lat[k]
            printf "%5d %12.1f %12.1f %12.1f %7.2f (%3.0f%%) %7.2f (%3.0f%%)\n", n, 1e6 * c, 1e6 * ring, 1e6 * tree,
                c1 / (c + ring), 100 * c1 / (c + ring) / n, c1 / (c + tree), 100 * c1 / (c + tree) / n
        }
    }
}'
