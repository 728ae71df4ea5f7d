#!/usr/bin/python3
"""A scaling model on paper: the predicted data-parallel efficiency of the benchmark networks
at 2 to 1024 nodes (one rank per node, the per-rank batch fixed: weak scaling), from the
compute time of a step measured on this machine and an allreduce cost model with published
InfiniBand HDR figures, and the bucket size and `accumulate` that keep the exchange small.

    scripts/bench/scaling_model.py [build/bench.log [build/link.log]]

Measured: the step time at np=1 (median of the `trainer bench` lines in the log, written by
scripts/bench/run.sh; built-in figures of this machine when there is no log). Assumed (HDR
200 Gb/s, as published for ConnectX-6 and Open MPI/UCX): alpha = 1.5 us per message step,
beta = 1/24 GB/s per byte; the allreduce is Rabenseifner's (reduce-scatter + allgather by
recursive halving and doubling, what Open MPI uses for these sizes):
    T(p, n) = 2 log2(p) alpha + 2 (p - 1)/p n beta.
Efficiency E = T_step / (T_step + T_exposed), with T_exposed = T(p, n) when nothing overlaps,
or max(0, T(p, n) - T_backward) when the buckets overlap the backward pass (about half of
the step for these networks).

The same model on this machine's own link: with scripts/bench/link.sh's log (its two-host FIT
line: alpha and beta measured between two namespace nodes) and run.sh's two-node rows, a
second table puts the model's two-node step (the np=1 step halved, as the ranks halve the
rows, plus the exposed exchange) beside the measured one.
"""
import math
import statistics
import sys

ALPHA = 1.5e-6        # s per message step (assumed: HDR + MPI software)
BW = 24e9             # bytes/s (assumed: HDR 200 Gb/s, 96% achievable)
NETS = {              # name: (parameters, measured step seconds at np=1 if no log, backward share)
    "moons": (481, 4.8e-6, 0.4),
    "mlp784": (235146, 1.40e-3, 0.47),
    "wide2048": (6316042, 0.178, 0.6),
}


def measured(log, variant=("openblas", "fp32")):
    """Median np=1 step seconds per network of one engine x precision in run.sh's log."""
    steps = {}
    try:
        for line in open(log):
            kv = dict(f.split("=", 1) for f in line.split()[1:])
            if kv.get("np") == "1" and (kv.get("gemm", variant[0]), kv.get("precision", variant[1])) == variant:
                steps.setdefault(kv["cfg"], []).append(float(kv["step_ms"]) / 1e3)
    except OSError:
        return {}
    return {k: statistics.median(v) for k, v in steps.items()}


def allreduce(p, nbytes):
    return 2 * math.log2(p) * ALPHA + 2 * (p - 1) / p * nbytes * BW ** -1


def measured_link(log):
    """alpha (s) and beta (s/byte) of the two-host FIT line of link.sh's log, or None."""
    try:
        for line in open(log):
            if line.startswith("FIT") and " hosts=2 " in line:
                kv = dict(f.split("=", 1) for f in line.split()[1:])
                return float(kv["alpha_us"]) * 1e-6, 1.0 / (float(kv["bandwidth_GBps"]) * 1e9)
    except OSError:
        pass
    return None


def two_nodes(bench_log, link_log):
    """The model's two-node step on the measured link beside run.sh's two-node measurement."""
    link = measured_link(link_log)
    if not link:
        return
    alpha, beta = link
    rows = {}
    for line in open(bench_log):
        if not line.startswith("BENCH"):
            continue
        kv = dict(f.split("=", 1) for f in line.split()[1:])
        layout = kv.get("layout", "np" + kv["np"])
        if layout == "2nodes":
            layout += " " + kv.get("mode", "fp32")
        key = (kv["cfg"], kv["gemm"] + " " + kv["precision"], layout)
        rows.setdefault(key, []).append(kv)
    print()
    print(f"On this machine's link (alpha {1e6 * alpha:.2f} us, 1/beta {1e-9 / beta:.2f} GB/s between two "
          "namespace nodes): the model's two-node step against run.sh's")
    print()
    print("| network | gemm | between nodes | exchange T(2, n) | backward | model step (no overlap - full overlap) | measured step | "
          "measured comm wait |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for (cfg, variant, layout), r2 in sorted(rows.items()):
        if not layout.startswith("2nodes") or (cfg, variant, "np1") not in rows:
            continue
        mode = layout.split()[1]
        med = lambda rs, k: statistics.median(float(x[k]) for x in rs)  # noqa: E731
        r1 = rows[(cfg, variant, "np1")]
        # bytes a parameter: 16-bit compressed, fp32, or the exact sum's int64
        n = {"bf16": 2, "fp16": 2, "deterministic": 8}.get(mode, 4) * NETS[cfg][0]
        t = 2 * alpha + n * beta  # T(2, n)
        compute = med(r1, "step_ms") / 2 / 1e3
        bwd = med(r2, "backward_ms") / 1e3
        print(f"| {cfg} | {variant} | {mode} | {1e3 * t:.3f} ms | {1e3 * bwd:.3f} ms | {1e3 * (compute + t):.3f} - "
              f"{1e3 * (compute + max(0.0, t - bwd)):.3f} ms | {med(r2, 'step_ms'):.3f} ms | "
              f"{med(r2, 'comm_wait_ms'):.3f} ms |")


def main():
    got = measured(sys.argv[1] if len(sys.argv) > 1 else "build/bench.log")
    ps = [2, 8, 64, 256, 1024]
    print("| network | gradient | step at np=1 | " + " | ".join(f"{p} nodes" for p in ps) +
          " | bucket | accumulate for >= 90% at 1024 nodes |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in ps) + " | --- | --- |")
    for name, (params, step, bwd) in NETS.items():
        step = got.get(name, step)
        n = 4 * params
        cells = []
        for p in ps:
            t = allreduce(p, n)
            plain = step / (step + t)
            overlap = step / (step + max(0.0, t - bwd * step))
            cells.append(f"{100 * plain:.0f}% ({100 * overlap:.0f}%)")
        # buckets: large enough that the latency term is <= 10% of the bandwidth term at 1024
        # nodes, never more than the gradient (one bucket: the latency paid once)
        bucket = min(n, 10 * 2 * math.log2(1024) * ALPHA * BW / 2)
        t1024 = allreduce(1024, n)
        acc = 1
        while step * acc / (step * acc + t1024) < 0.9 and acc < 1 << 20:
            acc *= 2
        print(f"| {name} | {n / 1e6:.3g} MB | {1e3 * step:.4g} ms | " + " | ".join(cells) +
              f" | {'one bucket (the whole gradient)' if bucket >= n else f'{bucket / 1e6:.1f} MB'} | {acc} |")


if __name__ == "__main__":
    main()
    two_nodes(sys.argv[1] if len(sys.argv) > 1 else "build/bench.log",
              sys.argv[2] if len(sys.argv) > 2 else "build/link.log")
