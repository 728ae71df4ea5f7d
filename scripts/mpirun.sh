#!/bin/bash
# mpirun.sh: mpirun for trainer jobs across nodes, which always ends.
#
#   scripts/mpirun.sh [mpirun options] trainer train CONFIG.ini [...]
#   e.g. scripts/mpirun.sh -np 2 --host node1:1,node2:1 build/trainer train run.ini
#
# When a node is lost (its link down, the machine gone), the trainer's watchdog ends the run
# within its deadline ([train] watchdog) naming the missing rank, and every rank that answers
# exits with status 8. Plain Open MPI mpirun (4.1) then waits for the unreachable node's
# daemon until TCP gives up, many minutes later, and crashes in PMIx_Finalize when killed.
# This script runs mpirun with:
#   - TRAINER_STATUS_FILE, a file each rank appends its watchdog verdict to before it exits;
#     once a verdict is there and mpirun is still running TRAINER_MPIRUN_GRACE seconds later
#     (default 20), the script kills mpirun and exits with the verdict's status, 8;
#   - TCP keepalive on Open MPI's daemon connections (oob_tcp_keepalive_*: probe after 60 s
#     idle, every 10 s, 3 misses), so a lost node ends the job even with the watchdog off: mpirun
#     then reports the lost daemon (its status 205), which this script also returns as 8, the
#     status of "a rank stopped answering".
# The status file lives in TRAINER_STATUS_DIR (default: the current directory), which must be
# a file system the ranks' nodes share. SIGTERM, SIGINT, SIGHUP and SIGUSR1 to this script go
# to mpirun, which forwards them to the ranks (USR1: checkpoint and exit 75). Any other exit
# status is mpirun's.
set -uo pipefail
if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
    sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 2
fi
GRACE=${TRAINER_MPIRUN_GRACE:-20}
status_file=$(mktemp "${TRAINER_STATUS_DIR:-$PWD}/.trainer-status.XXXXXX") || exit 4
trap 'rm -f "$status_file"' EXIT
export TRAINER_STATUS_FILE=$status_file
mpirun -x TRAINER_STATUS_FILE --mca oob_tcp_keepalive_time 60 --mca oob_tcp_keepalive_intvl 10 \
    --mca oob_tcp_keepalive_probes 3 "$@" &
pid=$!
for sig in TERM INT HUP USR1; do
    trap "kill -$sig $pid 2>/dev/null" "$sig"
done

verdict() { awk 'NR == 1 {print $1}' "$status_file"; }
seen=-1
while kill -0 "$pid" 2>/dev/null; do
    if [[ -s $status_file ]]; then
        ((seen < 0)) && seen=$SECONDS
        if ((SECONDS - seen >= GRACE)); then
            echo "mpirun.sh: the trainer's watchdog ended the run ($(head -1 "$status_file")) and mpirun has" \
                "not ended ${GRACE} s later (a node's daemon is unreachable): ending mpirun" >&2
            # KILL, not TERM: its abort is already under way, and a TERM then crashes it in
            # PMIx_Finalize; the daemons on the nodes still reachable end their ranks when
            # mpirun's connection closes
            { kill -KILL "$pid" && wait "$pid"; } 2>/dev/null
            exit "$(verdict)"
        fi
    fi
    sleep 1
done
# a trapped signal interrupts `wait`: wait until mpirun has really ended
while true; do
    wait "$pid"
    rc=$?
    kill -0 "$pid" 2>/dev/null || break
done
if [[ -s $status_file ]]; then
    exit "$(verdict)"
fi
if [[ $rc -eq 205 ]]; then # ORTE: lost communication with a remote daemon (the keepalive)
    echo "mpirun.sh: mpirun lost a node's daemon (see its message above): exit status 8 (resume from the last" \
        "checkpoint)" >&2
    exit 8
fi
exit "$rc"
