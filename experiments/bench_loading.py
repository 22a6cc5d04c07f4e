"""A GraphSAINT training epoch through the loading pipeline, by where the features live.

One run, one generated power-law graph (default 2M nodes, ~40M directed edges), 128-d float32
features, random-walk batches (3000 roots x 2), a 2-layer GCN (hidden 128, Adam), one process
on the machine's cores. Every configuration trains the same batches from the same weights:

- (a) all features in memory (``InMemoryFeatureStore``);
- (b) the tiered store over the host tier, cache tier of ``--cache-fraction`` of the rows;
- (c) the tiered store over the disk tier (the ``.npy`` file read through the disk store),
  prefetching on and off; with ``--cold`` also with the file's pages dropped before the epoch.

It prints epoch seconds, the ratio to (a), the cache hit rate and bytes per tier, and how much
of the disk tier's extra fetch time prefetching hides: ``(t_off - t_on) / (t_off - t_a)``
(target >= 0.5), and checks that every configuration gave the same losses, bit for bit.

    python -m gnnsys.experiments.bench_loading             # the full benchmark
    python -m gnnsys.experiments.bench_loading --quick     # small graph, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gnnsys.experiments.bench_samplers import add_graph_arguments, bench_graph
from gnnsys.models import build_model
from gnnsys.samplers.saint_samplers import SaintRandomWalkSampler
from gnnsys.storage import DiskFeatureStore, InMemoryFeatureStore, TieredFeatureStore
from gnnsys.storage.disk_io import drop_file_pages

from gnnsys.loading import FetchFeatures, LoadingPipeline, operator_norms
from gnnsys.trainers.backprop import node_loss

TARGET_TIERED_HOST = 1.1  # (b) within this factor of (a)
TARGET_HIDDEN = 0.5  # prefetching hides at least this share of the disk tier's extra time


def _cache_dir() -> Path:
    root = Path(os.environ.get("GNNSYS_CACHE") or Path.home() / ".cache" / "gnnsys") / "bench_loading"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _epoch(sampler, store, y, model_state, args, prefetch: int, epoch: int) -> dict[str, Any]:
    """One training epoch (``epoch`` of the sampler's stream) from ``model_state``; seconds,
    per-step losses and the store's traffic."""
    torch.manual_seed(0)
    model = build_model("gcn", args.dim, args.hidden, args.classes, num_layers=2, dropout=0.0)
    model.load_state_dict(model_state)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    sampler.set_epoch(epoch)
    pipe = LoadingPipeline(sampler, fetch=FetchFeatures(store, y), operators=operator_norms(model), prefetch=prefetch)
    if hasattr(store, "reset_stats"):
        store.reset_stats()
    losses = []
    t0 = time.perf_counter()
    for b in pipe:
        opt.zero_grad()
        loss = node_loss(model(b), b, y)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return {"seconds": time.perf_counter() - t0, "losses": losses, "steps": len(losses), "stats": store.stats()}


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        args.num_nodes, args.avg_degree, args.roots, args.coverage = 50_000, 20.0, 300, 3.0
    g = bench_graph(args.num_nodes, args.avg_degree, args.exponent)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(g.num_nodes, args.dim, generator=gen)
    y = torch.randint(0, args.classes, (g.num_nodes,), generator=gen)
    print(f"# graph: {g.num_nodes} nodes, {g.num_edges} directed edges; {args.dim}-d float32 features "
          f"({x.numel() * 4 / 2**30:.2f} GiB); RW {args.roots} x {args.walk_length}; torch threads "
          f"{torch.get_num_threads()}; load average {os.getloadavg()[0]:.2f}", flush=True)
    sampler = SaintRandomWalkSampler(g, args.roots, args.walk_length, seed=0, group_size=8)
    t = time.perf_counter()
    sampler.compute_normalization(args.coverage)
    print(f"# pre-sampling (coverage {args.coverage:g}): {sampler.stats.num_subgraphs} subgraphs in "
          f"{time.perf_counter() - t:.1f} s; an epoch is {len(sampler)} batches", flush=True)
    counts = sampler.stats.node_count.cpu()
    path = _cache_dir() / f"x_n{g.num_nodes}_d{args.dim}.npy"
    if not path.exists() or np.load(path, mmap_mode="r").shape != tuple(x.shape):
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, x.numpy())
        tmp.replace(path)
    torch.manual_seed(0)
    state = build_model("gcn", args.dim, args.hidden, args.classes, num_layers=2, dropout=0.0).state_dict()

    def tiered(base):
        return TieredFeatureStore(base, args.cache_fraction, args.policy, "cpu", graph=g, counts=counts,
                                  window=min(256, len(sampler)))

    configs: list[tuple[str, Any, int, bool]] = [
        ("(a) memory", lambda: InMemoryFeatureStore(x, check_finite=False), 1, False),
        ("(b) tiered, host tier", lambda: tiered(x), 1, False),
        ("(c) tiered, disk tier, prefetch on", lambda: tiered(DiskFeatureStore(path)), 1, False),
        ("(c) tiered, disk tier, prefetch off", lambda: tiered(DiskFeatureStore(path)), 0, False),
    ]
    if args.cold:
        configs += [("(c) disk tier, cold pages, prefetch on", lambda: tiered(DiskFeatureStore(path)), 1, True),
                    ("(c) disk tier, cold pages, prefetch off", lambda: tiered(DiskFeatureStore(path)), 0, True)]
    # a warm-up epoch (kernel compilation, page cache) that no configuration is timed on
    _epoch(sampler, InMemoryFeatureStore(x, check_finite=False), y, state, args, 1, 0)
    res: dict[str, Any] = {"graph": {"nodes": g.num_nodes, "edges": g.num_edges}, "dim": args.dim,
                           "roots": args.roots, "cache_fraction": args.cache_fraction, "policy": args.policy,
                           "coverage": args.coverage, "batches": len(sampler), "runs": {}}
    for name, make, prefetch, cold in configs:
        best = None
        for _ in range(args.repeat):  # the fastest of a few epochs: the others' noise is the machine's
            store = make()
            if cold:
                drop_file_pages(path)
            r = _epoch(sampler, store, y, state, args, prefetch, 1)
            best = r if best is None or r["seconds"] < best["seconds"] else best
        r = best
        res["runs"][name] = r
        cache = r["stats"].get("cache", {})
        print(f"{name}: {r['seconds']:.2f} s ({r['steps']} steps), hit rate {cache.get('hit_rate', float('nan')):.3f}",
              flush=True)
    _table(res)
    return res


def _table(res: dict[str, Any]) -> None:
    runs = res["runs"]
    base = runs["(a) memory"]
    print()
    print("| configuration | epoch s | vs (a) | cache hit rate | MB from cache | MB from host | MB from disk |")
    print("|---|---|---|---|---|---|---|")
    for name, r in runs.items():
        st = r["stats"]
        mb = {t: st.get(t, {}).get("bytes", 0) / 2**20 for t in ("cache", "host", "disk")}
        if name.startswith("(a)"):
            mb["host"] = st.get("memory", {}).get("bytes", 0) / 2**20
        hit = st.get("cache", {}).get("hit_rate")
        hit_s = f"{hit:.3f}" if hit is not None else "-"
        print(f"| {name} | {r['seconds']:.2f} | {r['seconds'] / base['seconds']:.2f}x | {hit_s} | {mb['cache']:.0f} | "
              f"{mb['host']:.0f} | {mb['disk']:.0f} |")
    same = all(r["losses"] == base["losses"] for r in runs.values())
    print(f"losses identical across configurations, bit for bit: {same}")
    b = runs["(b) tiered, host tier"]["seconds"] / base["seconds"]
    print(f"(b) / (a) = {b:.2f}x (target <= {TARGET_TIERED_HOST}x)")
    for tag in ("", "cold pages, "):
        on = runs.get("(c) tiered, disk tier, prefetch on" if not tag else "(c) disk tier, cold pages, prefetch on")
        off = runs.get("(c) tiered, disk tier, prefetch off" if not tag else "(c) disk tier, cold pages, prefetch off")
        if on and off:
            extra = off["seconds"] - base["seconds"]
            hidden = (off["seconds"] - on["seconds"]) / extra if extra > 0 else float("nan")
            print(f"disk tier, {tag}prefetch hides {hidden:.2f} of the extra fetch time (t_off - t_on) / "
                  f"(t_off - t_a) (target >= {TARGET_HIDDEN})")
    res["identical_losses"] = same


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    add_graph_arguments(p, num_nodes=2_000_000, avg_degree=20.0, dim=128)
    p.add_argument("--coverage", type=float, default=10.0, help="pre-sampling coverage (C_v for the cache policy)")
    p.add_argument("--cache-fraction", type=float, default=0.1)
    p.add_argument("--policy", default="planned")
    p.add_argument("--repeat", type=int, default=2, help="epochs per configuration; the fastest is reported")
    p.add_argument("--cold", action="store_true", help="also time the disk tier with its pages dropped first")
    p.add_argument("--json", help="write the results here (per-step losses included)")
    args = p.parse_args(argv)
    res = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
