#!/bin/bash
# Memory per node for Fashion-MNIST (datasets/configs/fashion_mnist.ini, one epoch, one BLAS
# thread per rank) at np=1, 2 and 8, for this build and for the build of an earlier commit
# (BEFORE, default cf0a014: the last commit before the data were held once per node).
#
# For each run, sampled every 50 ms while it lasts, the largest sums over the ranks of
#   RssAnon: private anonymous memory (what each rank holds for itself), and
#   Pss:     proportional set size (private memory plus each shared page divided among the
#            processes mapping it: node-shared windows and mapped file pages counted once),
# the node's memory as the kernel accounts it. Needs Debian's dataset-fashion-mnist.
#
#   scripts/bench/memory.sh [NP...]        (default 1 2 8; BEFORE=COMMIT, BEFORE= to skip it)
set -euo pipefail
cd "$(dirname "$0")/../.."
NPS=("${@:-1}")
[[ $# -gt 0 ]] || NPS=(1 2 8)
BEFORE=${BEFORE-cf0a014}
[[ -x build/trainer ]] || scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d /var/tmp/trainer-bench-memory.XXXXXX)
trap 'git worktree remove --force "$W/src" 2>/dev/null || true; rm -rf "$W"' EXIT
binaries=("after=$PWD/build/trainer")
if [[ -n $BEFORE ]]; then
    echo "building $BEFORE in $W/src ..."
    git worktree add --detach "$W/src" "$BEFORE" >/dev/null 2>&1
    cmake -S "$W/src" -B "$W/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$W/build" --target trainer -j "$(nproc)" >/dev/null
    binaries=("before=$W/build/trainer" "${binaries[@]}")
fi
/usr/bin/python3 - "$W" datasets/configs/fashion_mnist.ini "${NPS[*]}" "${binaries[@]}" <<'PY'
import os, subprocess, sys, time
work, cfg, nps, binaries = sys.argv[1], sys.argv[2], [int(n) for n in sys.argv[3].split()], sys.argv[4:]

def descendants(root):
    parent = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    parent[int(p)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    out, frontier = [], [root]
    while frontier:
        frontier = [p for p, pp in parent.items() if pp in frontier]
        out += frontier
    return out

def field_kb(path, name):
    with open(path) as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return 0

def sample(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            if f.read().strip() != "trainer":
                return None
        return field_kb(f"/proc/{pid}/status", "RssAnon"), field_kb(f"/proc/{pid}/smaps_rollup", "Pss")
    except OSError:
        return None

print("| build | np | RssAnon summed, MiB | per rank, MiB | Pss summed (node), MiB |")
print("| --- | --- | --- | --- | --- |")
for np_ in nps:
    for spec in binaries:
        name, binary = spec.split("=", 1)
        cmd = ["mpirun", "-np", str(np_), "--bind-to", "none", binary, "train", cfg, "--overwrite",
               "--set", "train.epochs=1", "--set", "train.threads=1", "--set", "output.checkpoint_every=0",
               "--set", f"output.dir={work}/run"]
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        anon = pss = 0
        while p.poll() is None:
            s = [v for v in (sample(q) for q in descendants(p.pid)) if v]
            if len(s) == np_:
                anon, pss = max(anon, sum(a for a, _ in s)), max(pss, sum(b for _, b in s))
            time.sleep(0.05)
        if p.returncode != 0:
            sys.exit(f"{' '.join(cmd)}: status {p.returncode}\n{p.stderr.read()[-2000:]}")
        print(f"| {name} | {np_} | {anon / 1024:.0f} | {anon / 1024 / np_:.0f} | {pss / 1024:.0f} |", flush=True)
PY
