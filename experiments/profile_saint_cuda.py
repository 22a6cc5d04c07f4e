"""Where a GraphSAINT sampler's time goes on a GPU: per-subgraph microseconds for drawing,
inducing and assembling batches, then torch.profiler's top operators.

    python -m gnnsys.experiments.profile_saint_cuda [--sampler node|edge] [--group 64]

Needs CUDA. Same generated power-law graph as ``bench_samplers`` (1M nodes, ~20M edges).
"""

from __future__ import annotations

import argparse
import time

import torch
from gnnsys.experiments.bench_samplers import bench_graph
from gnnsys.samplers import SaintEdgeSampler, SaintNodeSampler


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sampler", choices=("node", "edge"), default="node")
    p.add_argument("--group", type=int, default=64)
    p.add_argument("--groups", type=int, default=10)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("profile_saint_cuda needs a CUDA device")
    g = bench_graph(1_000_000, 18.6, 2.5).to("cuda")
    grp = args.group
    s = (SaintNodeSampler(g, 8000, device="cuda", group_size=grp) if args.sampler == "node"
         else SaintEdgeSampler(g, 6000, device="cuda", group_size=grp))
    for i in range(2):  # warm-up
        s.sample_at(range(grp * i, grp * (i + 1)))
    torch.cuda.synchronize()
    parts = dict(generators=0.0, draws=0.0, induce=0.0, batch=0.0)
    for rep in range(args.groups):
        ks = list(range(1000 + grp * rep, 1000 + grp * (rep + 1)))
        t0 = time.perf_counter()
        gens = [s._generator(k) for k in ks]
        t1 = time.perf_counter()
        draws = s._draw_group(gens)
        torch.cuda.synchronize()
        t2 = time.perf_counter()
        induced = s._inducer.induce(draws)
        torch.cuda.synchronize()
        t3 = time.perf_counter()
        [s._batch(k, r) for k, r in zip(ks, induced)]
        torch.cuda.synchronize()
        t4 = time.perf_counter()
        for k, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            parts[k] += dt
    n = grp * args.groups
    print("per subgraph (us): " + ", ".join(f"{k} {v / n * 1e6:.1f}" for k, v in parts.items())
          + f" -> {n / sum(parts.values()):.0f} subgraphs/s")
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for i in range(5):
            s.sample_at(range(grp * (i + 100), grp * (i + 101)))
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
    print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=12))


if __name__ == "__main__":
    main()
