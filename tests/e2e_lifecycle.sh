#!/bin/sh
# e2e_lifecycle.sh - a run's status cannot lie (experiments/store/lifecycle.h): a
# training process records its pid and beats while it trains; a live run is never
# marked crashed and cannot be resumed twice; once killed with SIGKILL, the next
# command that opens the database (here `loupe runs list`) marks it 'crashed' when
# its heartbeat is old enough, and it resumes to completion.
#
#   LOUPE_BIN=bin/loupe LOUPE_BUILD=build sh tests/e2e_lifecycle.sh
. "$(dirname "$0")/lib_e2e.sh"
e2e_init e2e_lifecycle
DB=$T/life.db

# 40 epochs of 20,000 images: far longer than the checks below take.
LOUPE_HEARTBEAT_SECONDS=0.1 "$L" train configs/mnist_two_conv.yaml --set data.train_limit=20000 \
    --set data.test_limit=200 --set train.epochs=40 --db "$DB" --threads 1 --quiet >"$T/out" 2>"$T/err" &
P=$!
E2E_PIDS="$E2E_PIDS $P"
n=0
until [ "$(sq 'SELECT count(*) FROM runs' 2>/dev/null)" = 1 ] || [ $n -gt 600 ]; do n=$((n + 1)); sleep 0.05; done
check_eq "the run records the pid of its process" "$(sq 'SELECT pid FROM runs WHERE id = 1')" "$P"
hb1=$(sq 'SELECT heartbeat_at FROM runs WHERE id = 1')
sleep 0.5
hb2=$(sq 'SELECT heartbeat_at FROM runs WHERE id = 1')
check "the heartbeat advances while it trains ($hb1 -> $hb2)" test "$hb2" \> "$hb1"

run env LOUPE_STALE_SECONDS=0 "$L" runs list --db "$DB"
expect_rc 0 "runs list with a zero staleness threshold"
check_eq "a live run stays running, whatever the threshold" "$(sq 'SELECT status FROM runs WHERE id = 1')" running
run "$L" train --resume 1 --db "$DB" --threads 1 --quiet
expect_rc 2 "resuming a run that is still training"
expect_err "run 1 is still being trained by process $P on this host" "says which process trains it"

kill -9 "$P"
wait "$P" 2>/dev/null
run "$L" runs list --db "$DB"
check_eq "just killed, heartbeat fresh (default threshold 30 s): still running" \
    "$(sq 'SELECT status FROM runs WHERE id = 1')" running
sleep 0.4
run env LOUPE_STALE_SECONDS=0.3 "$L" runs list --db "$DB" --status crashed
expect_rc 0 "runs list after the heartbeat went stale"
expect_out "crashed" "the list shows the run as crashed"
check_eq "the database says crashed" "$(sq 'SELECT status FROM runs WHERE id = 1')" crashed
check_eq "finished_at is its last heartbeat" "$(sq 'SELECT finished_at = heartbeat_at FROM runs WHERE id = 1')" 1
run "$L" runs show 1 --db "$DB"
expect_out "error: crashed: its process $P on" "runs show says which process vanished"
expect_out "process $P on" "and the process and heartbeat"
done_before=$(sq 'SELECT epochs_done FROM runs WHERE id = 1')
run "$L" train --resume 1 --db "$DB" --threads 1 --quiet --set train.epochs=$((done_before + 1))
expect_rc 0 "a crashed run resumes"
check_eq "and completes" "$(sq 'SELECT status FROM runs WHERE id = 1')" completed
check_eq "resumed under another process" "$(sq "SELECT pid != $P FROM runs WHERE id = 1")" 1
check_eq "integrity_check" "$(sq 'PRAGMA integrity_check')" ok
e2e_finish
