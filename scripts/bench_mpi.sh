#!/bin/sh
# bench_mpi.sh LOUPE BUILD - training throughput on 1 and 2 MPI ranks of one thread
# each (and one process of 2 threads, the other way to use 2 cores), the parallel
# efficiency, and the cost of the per-step allreduce alone (bench/mpi_allreduce.c).
# `make bench-mpi`; docs/scaling.md keeps the figures. Knobs: BENCH_MPI_IMAGES
# (20000), BENCH_MPI_EPOCHS (4; the first is a warm-up), BENCH_MPI_BATCH (64).
# A loaded machine lowers every figure and the 2-rank one most: each step waits for
# the slower rank, so the load average at start and end is printed beside them.
set -e
L=${1:-bin/loupe}
B=${2:-build}
IMAGES=${BENCH_MPI_IMAGES:-20000}
EPOCHS=${BENCH_MPI_EPOCHS:-4}
BATCH=${BENCH_MPI_BATCH:-64}
command -v mpirun >/dev/null 2>&1 || { echo "bench-mpi needs mpirun: make deps (openmpi-bin)" >&2; exit 1; }
"$L" train --help | grep -q '^MPI: built with MPI' || { echo "bench-mpi: $L was built without MPI (make MPI=1)" >&2; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/loupe-bench-mpi.XXXXXX")
trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

echo "bench-mpi: $(date -u +%FT%TZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "configs/mnist_two_conv.yaml, $IMAGES training images, batch $BATCH (global), $EPOCHS epochs (first one a warm-up)"

# median of the training images/s of epochs 2.. of the run in $1
ips_of() {
    sqlite3 "$1" "SELECT value FROM metrics WHERE name = 'images_per_s' AND epoch > 1 ORDER BY value" |
        awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ARGS="configs/mnist_two_conv.yaml --set data.train_limit=$IMAGES --set data.test_limit=1000
      --set train.epochs=$EPOCHS --set train.batch_size=$BATCH --quiet"
# shellcheck disable=SC2086
mpirun -np 1 "$L" train $ARGS --threads 1 --db "$T/r1.db" >/dev/null
# shellcheck disable=SC2086
mpirun -np 2 "$L" train $ARGS --threads 1 --db "$T/r2.db" --profile >/dev/null 2>"$T/r2.err"
# shellcheck disable=SC2086
"$L" train $ARGS --threads 2 --db "$T/t2.db" >/dev/null
r1=$(ips_of "$T/r1.db")
r2=$(ips_of "$T/r2.db")
t2=$(ips_of "$T/t2.db")
printf '%-28s %12s %14s %12s\n' setting "images/s" "ms per step" efficiency
for row in "1 rank x 1 thread:$r1:1" "2 ranks x 1 thread:$r2:2" "1 process x 2 threads:$t2:2"; do
    name=${row%%:*}; rest=${row#*:}; ips=${rest%%:*}; n=${rest#*:}
    awk -v name="$name" -v ips="$ips" -v n="$n" -v one="$r1" -v b="$BATCH" 'BEGIN {
        printf "%-28s %12.0f %14.2f %11.0f%%\n", name, ips, (ips > 0 ? 1000 * b / ips : 0), (one > 0 ? 100 * ips / (n * one) : 0) }'
done
sed -n 's/^ *in MPI collectives (rank 0) */2 ranks: rank 0 in MPI collectives (all epochs, s): /p' "$T/r2.err"

mpicc -O2 -o "$T/mpi_allreduce" bench/mpi_allreduce.c
echo "the allreduce alone (2 ranks, 2000 calls each; first 1 float, then the gradient block):"
mpirun -np 2 "$T/mpi_allreduce" 27565 2000
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
