#!/bin/bash
# A data set larger than this machine's memory, trained from disk at np=2 (issue 14).
#
# Writes a mappable HDF5 file of SIZE_GIB GiB (250 float32 features per row, a linear
# two-class target; default: 2 GiB more than MemTotal), drops the page cache, and trains one
# epoch of 250-32-2 (LAYERS="250, 32, 2"; Adam, batch 512, one BLAS thread per rank) with `shuffle = block`; then
# with the global shuffle, stopped by SIGUSR1 after GLOBAL_SECONDS of training (it reads one page per row:
# an epoch would take hours). For each: samples/s (steps x batch / wall seconds of training,
# from the trainer's own timing, the mapping's set-up included), the peak private (RssAnon)
# and resident (VmRSS, mapped file pages included) memory per rank, and the rate the disk
# read at (the device's sector counter over the run). Memory is sampled every second: "peak"
# includes the loading rank's moment of holding the index lists privately before they move
# to node-shared memory, "training" is the last sample (the steady state). Deletes the file
# afterwards unless KEEP=1; DATA=FILE reuses a file written before (any size). Needs root
# (drop_caches) and SIZE_GIB + 1 GiB of free disk under WORK.
#
# LIMIT_MIB=M runs each job in a cgroup v1 memory limit of M MiB instead (page cache included):
# a small file then stands for one larger than memory, and a first run "warm" (the file in the
# page cache, no limit) gives the in-memory speed to compare with.
#
#   scripts/bench/larger.sh [SIZE_GIB] [GLOBAL_SECONDS]     (WORK=/var/tmp by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
mem_gib=$(awk '/MemTotal/ {print int($2 / 1048576 + 0.5)}' /proc/meminfo)
SIZE_GIB=${1:-$((mem_gib + 2))}
GLOBAL_SECONDS=${2:-120}
WORK=${WORK:-/var/tmp}
[[ -x build/trainer ]] || scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
W=$(mktemp -d "$WORK/trainer-bench-larger.XXXXXX")
[[ ${KEEP:-0} == 1 ]] || trap 'rm -rf "$W"' EXIT
if [[ -n ${DATA:-} ]]; then
    echo "reusing $DATA ($(($(stat -c %s "$DATA") >> 30)) GiB; this machine has $mem_gib GiB of memory)"
else
DATA="$W/big.h5"
rows=$((SIZE_GIB * 1073741824 / 1000))
echo "writing $DATA: $rows rows x 250 float32 ($SIZE_GIB GiB; this machine has $mem_gib GiB of memory)"
/usr/bin/python3 - "$DATA" "$rows" <<'PY'
import sys, time
import h5py, numpy as np
path, rows, cols = sys.argv[1], int(sys.argv[2]), 250
rng = np.random.default_rng(5)
w = rng.standard_normal(cols, dtype=np.float32)
t = time.time()
with h5py.File(path, "w") as f:
    X = f.create_dataset("X", shape=(rows, cols), dtype=np.float32)  # contiguous: mappable
    y = np.empty(rows, dtype=np.int64)
    for r0 in range(0, rows, 1 << 20):
        block = rng.standard_normal((min(1 << 20, rows - r0), cols), dtype=np.float32)
        X[r0:r0 + len(block)] = block
        y[r0:r0 + len(block)] = block @ w > 0
    f.create_dataset("y", data=y)
print(f"written in {time.time() - t:.0f} s")
PY
fi
cat >"$W/big.ini" <<INI
[model]
layers = ${LAYERS:-250, 32, 2}
[data]
path = $DATA
test_fraction = 0
val_fraction = 0
[train]
loss = cross_entropy
optimizer = adam
epochs = 1
batch_size = 512
threads = 1
[output]
checkpoint_every = 0
INI
dev=$(basename "$(df --output=source "$DATA" | tail -1)")
sectors_read() { awk '{print $3}' "/sys/block/$dev/stat" 2>/dev/null || echo 0; }

# run NAME SECONDS(0: to the end) SETTINGS...: one training run, measured
run() {
    local name=$1 limit=$2
    shift 2
    local JOIN=()
    if [[ $name == warm ]]; then
        cat "$DATA" >/dev/null # in the page cache: the in-memory speed
    else
        sync
        echo 3 >/proc/sys/vm/drop_caches
        if [[ -n ${LIMIT_MIB:-} ]]; then
            echo $((LIMIT_MIB << 20)) >"$CG/memory.limit_in_bytes"
            JOIN=(sh -c "echo \$\$ >$CG/cgroup.procs && exec \"\$@\"" sh)
        fi
    fi
    local s0 t0 out="$W/run-$name"
    s0=$(sectors_read)
    t0=$(date +%s.%N)
    "${JOIN[@]}" mpirun -np 2 --bind-to core build/trainer train "$W/big.ini" --set output.dir="$out" "$@" \
        >"$W/$name.log" 2>&1 &
    local job=$! anon=0 rss=0 now_anon=0 elapsed t1=""
    while kill -0 $job 2>/dev/null; do
        for pid in $(pgrep -f "trainer train $W/big.ini" || true); do
            [[ $(cat /proc/$pid/comm 2>/dev/null) == trainer ]] || continue
            local a r
            a=$(awk '/RssAnon/ {print $2}' /proc/$pid/status 2>/dev/null || echo 0)
            r=$(awk '/VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null || echo 0)
            ((${a:-0} > anon)) && anon=$a
            ((${a:-0} > 0)) && now_anon=$a
            ((${r:-0} > rss)) && rss=$r
        done
        elapsed=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN {print a - b}')
        # the first line is printed when the data are loaded and training starts
        [[ -z $t1 ]] && grep -q "training rows" "$W/$name.log" && t1=$(date +%s.%N)
        if ((limit > 0)) && [[ -n $t1 ]] && awk -v a="$(date +%s.%N)" -v b="$t1" -v l="$limit" 'BEGIN {exit !(a - b > l)}'; then
            kill -USR1 $job 2>/dev/null || true # mpirun forwards it: every rank stops at its next step
            limit=0
        fi
        sleep 1
    done
    wait $job || true
    local t_end load
    t_end=$(date +%s.%N)
    elapsed=$(awk -v a="$t_end" -v b="$t0" 'BEGIN {print a - b}')
    load=$(awk -v a="${t1:-$t_end}" -v b="$t0" 'BEGIN {print a - b}')
    local read_mib steps
    read_mib=$((($(sectors_read) - s0) * 512 / 1048576))
    steps=$(grep -oE '(step|steps) +[0-9]+|\(([0-9]+) steps\)' "$W/$name.log" | grep -oE '[0-9]+' | tail -1 || true)
    [[ -n $steps ]] || { echo "$name: the run failed:" >&2; tail -20 "$W/$name.log" >&2; exit 1; }
    printf '%-7s steps %-6s wall %6.1f s (loading %5.1f s)  samples/s while training %7.0f  per rank: RssAnon peak %5d MiB, training %5d MiB, VmRSS peak %5d MiB  disk read %6d MiB at %4.0f MiB/s\n' \
        "$name" "$steps" "$elapsed" "$load" "$(awk -v s="$steps" -v e="$elapsed" -v l="$load" 'BEGIN {print s * 512 / (e - l)}')" $((anon / 1024)) $((now_anon / 1024)) $((rss / 1024)) \
        "$read_mib" "$(awk -v m="$read_mib" -v e="$elapsed" 'BEGIN {print m / e}')" | tee -a build/bench-larger.log
    tail -3 "$W/$name.log" | sed 's/^/    /'
}
: >build/bench-larger.log
if [[ -n ${LIMIT_MIB:-} ]]; then
    CG=/sys/fs/cgroup/memory/trainer-bench-larger-$$
    mkdir "$CG"
    trap 'rmdir "$CG" 2>/dev/null; [[ ${KEEP:-0} == 1 ]] || rm -rf "$W"' EXIT
    echo "memory limit: $LIMIT_MIB MiB (cgroup v1, page cache included)"
    run warm 0 --set train.shuffle=block
fi
[[ ${ONLY:-block} == block ]] && run block 0 --set train.shuffle=block
[[ ${ONLY:-global} == global ]] && run global "$GLOBAL_SECONDS" --set train.shuffle=global
true
