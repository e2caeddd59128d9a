#!/usr/bin/env bash
# fuzz_cpu.sh TARGET CPU_SECONDS [LOG] - run one libFuzzer target until it has used
# CPU_SECONDS of CPU time (user + system, read from /proc), not wall time: on a shared
# machine a niced fuzzer gets a varying share of a core, and an "hour of fuzzing" should
# mean an hour of the fuzzer's own work. Same flags, corpus and environment as
# `make fuzz`; the fuzzer stops on SIGINT, which makes libFuzzer print its final stats.
# Prints one line: target, CPU seconds, wall seconds, executions, cov, ft, crashes.
# Exit 1 if a sanitizer or the harness reported an error.
set -u
t=$1 budget=$2 log=${3:-build-fuzz/fuzz_$1.cpu.log}
bin=build-fuzz/fuzz_$t
[ -x "$bin" ] || { echo "fuzz_cpu: $bin is not built (make fuzz-build)" >&2; exit 2; }
mkdir -p "build-fuzz/corpus/$t" build-fuzz/crashes
dict=; [ -f "tests/fuzz/$t.dict" ] && dict=-dict=tests/fuzz/$t.dict
tick=$(getconf CLK_TCK)
start=$(date +%s)
# Its own session, and that session's autogroup niced too: with autogroups (Linux's
# default) nice only ranks processes within a session, so a fuzzer started beside
# other sessions' work took an equal share of the CPU with each of them, niced or not.
ASAN_OPTIONS=allocator_may_return_null=1:max_allocation_size_mb=256:detect_leaks=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    setsid sh -c 'echo 19 >/proc/self/autogroup 2>/dev/null; exec nice -n 19 "$0" "$@"' "$bin" -malloc_limit_mb=1024 -rss_limit_mb=3072 -timeout=20 -print_final_stats=1 $dict \
    -artifact_prefix="build-fuzz/crashes/$t-" "build-fuzz/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1 &
pid=$!
trap 'kill -INT "$pid" 2>/dev/null' INT TERM # another session: pass ^C on
cpu=0
while kill -0 "$pid" 2>/dev/null; do
    # utime + stime are fields 14 and 15 of /proc/PID/stat (after the ")" of the name).
    if read -r -a f < <(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null); then
        cpu=$(( (f[11] + f[12]) / tick ))
        [ "$cpu" -ge "$budget" ] && { kill -INT "$pid"; break; }
    fi
    sleep 5
done
wait "$pid"
wall=$(( $(date +%s) - start ))
execs=$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$')
last=$(grep -E '^#[0-9]+' "$log" | tail -1)
cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
# Artifacts: crash-, leak-, timeout-, oom- are findings; slow-unit- only says an input
# took over 10 s of wall time, which a loaded machine can cause by itself.
crashes=$(ls build-fuzz/crashes/ 2>/dev/null | grep -cE "^$t-(crash|leak|timeout|oom)-" || true)
slow=$(ls build-fuzz/crashes/ 2>/dev/null | grep -c "^$t-slow-unit-" || true)
echo "fuzz_$t: cpu ${cpu} s, wall ${wall} s, executions ${execs:-?}, cov ${cov:-?}, ft ${ft:-?}," \
     "findings ${crashes}, slow units ${slow}"
! grep -qE 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|runtime error' "$log"
