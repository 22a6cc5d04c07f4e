"""Cache policies of the tiered feature store on a GraphSAINT trace, against Belady and the best
static set.

One run: a generated power-law graph (default 2M nodes, ~40M directed edges), 128-d float32
features, GraphSAINT random-walk batches (3000 roots x 2 steps, all nodes training). The
sampler's own pre-sampling (``compute_normalization``, coverage 50, as training runs it) gives
``C_v``; the trace is the next ``--epochs`` epochs of the sampler's stream *after* the
pre-sampled subgraphs (held out from the counts; in training the first epochs replay the
pre-sampled subgraphs, which only helps ``static-saint``). Static policies are measured over
several epochs (one epoch's best set also keeps that epoch's chance visitors).

For capacities of 1/5/10/20/40% of the rows, every policy runs the trace through a
``TieredFeatureStore`` (plan() before each gather, as the loading pipeline calls it) and
reports hit rate, bytes per tier, and the policy's bookkeeping per batch next to the time of a
plain host-tier gather of the same batch (``InMemoryFeatureStore.gather``: ``index_select``
into a new tensor; and into a reused buffer), timed alternately in the same run. Times are CPU
seconds of the gathering thread, so that other load on a shared machine does not enter the
ratios; torch runs single-threaded (``--threads``, as the pipeline's one prefetch thread would
gather; with more, idle OpenMP workers spin and CPU time stops meaning work).

    python -m gnnsys.experiments.bench_cache                 # the full benchmark
    python -m gnnsys.experiments.bench_cache --quick         # small smoke run
    gnnsys bench cache --plot results/bench_cache.png        # the same through the CLI
    python -m gnnsys.experiments.bench_cache --device cuda   # cache tier on the GPU (+ gather timings)
    gnnsys bench cache --device cuda --capacities 0.1 --policies static-saint,s3fifo --extra-windows ""

The graph is cached under ``$GNNSYS_CACHE`` (default ``/tmp``) by ``bench_samplers.bench_graph``.
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
from gnnsys.experiments.bench_samplers import bench_graph
from gnnsys.samplers.saint_samplers import SaintRandomWalkSampler
from gnnsys.storage import (
    BeladyPolicy,
    CachePolicy,
    HybridPolicy,
    InMemoryFeatureStore,
    LRUPolicy,
    PlannedPolicy,
    S3FIFOPolicy,
    StaticPolicy,
    TieredFeatureStore,
)
from gnnsys.storage.scores import degree_score, reverse_pagerank, trace_counts

from gnnsys.errors import ConfigError
from gnnsys.graph import Graph

CAPACITIES = (0.01, 0.05, 0.10, 0.20, 0.40)
STATIC = ("static-degree", "static-pagerank", "static-saint")
POLICIES = STATIC + ("lru", "s3fifo", "hybrid", "planned", "best-static", "belady")
# earlier measurements on this machine's generated graphs (REFERENCE.md), for the table's notes
REFERENCE_2M = {"degree": {0.05: 0.355, 0.10: 0.432, 0.20: 0.534}, "best-static": {0.05: 0.390, 0.10: 0.509,
                0.20: 0.683}, "belady": {0.05: 0.475, 0.10: 0.578, 0.20: 0.700}}


def _log(msg: str) -> None:
    print(msg, flush=True)


def shuffled_graph(num_nodes: int, avg_degree: float, exponent: float, seed: int = 0) -> Graph:
    """``bench_graph`` with its node ids randomly permuted (cached beside it). The generator numbers
    nodes by decreasing weight, so without this a tie in any score (degree 1..5 are huge tie groups;
    ``ranking`` breaks ties by smaller id) would be broken by the generator's hidden weights."""
    root = Path(os.environ.get("GNNSYS_CACHE") or "/tmp") / "gnnsys_bench"
    path = root / f"powerlaw_n{num_nodes}_d{avg_degree:g}_e{exponent:g}_s0_shuffled{seed}.pt"
    if path.exists():
        d = torch.load(path, weights_only=True)
        return Graph(d["indptr"], d["indices"], d["edge_ids"], validate=False)
    g = bench_graph(num_nodes, avg_degree, exponent)
    perm = torch.randperm(num_nodes, generator=torch.Generator().manual_seed(seed + 1))
    ei = perm[g.to_edge_index()]
    del g
    h = Graph.from_edge_index(ei, num_nodes)
    del ei
    root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"indptr": h.indptr, "indices": h.indices, "edge_ids": h.edge_ids}, tmp)
    tmp.replace(path)
    return h


def make_trace(sampler: SaintRandomWalkSampler, start: int, count: int, group: int = 16) -> list[torch.Tensor]:
    """Node ids of stream indices ``start .. start + count - 1`` (the batches' own order)."""
    trace: list[torch.Tensor] = []
    for k in range(start, start + count, group):
        ks = range(k, min(k + group, start + count))
        trace.extend(b.node_ids.cpu() for b in sampler.sample_at(ks))
    return trace


def sampled_trace(g: Any, train: torch.Tensor | None, roots: int, walk: int, epochs: int, args: argparse.Namespace,
                  key: str) -> tuple[torch.Tensor, list[torch.Tensor], int, int, int]:
    """GraphSAINT's pre-sampling counts ``C_v`` and the trace (node ids of ``epochs`` epochs of
    the stream), cached under ``$GNNSYS_CACHE/gnnsys_bench`` like the graph (pre-sampling a
    2M-node graph takes minutes). Returns ``(C_v, trace, presampled, epoch_batches, start)``."""
    path = Path(os.environ.get("GNNSYS_CACHE") or "/tmp") / "gnnsys_bench" / f"cache_trace_{key}.pt"
    if path.exists():
        d = torch.load(path, weights_only=True)
        trace = list(torch.split(d["flat"], d["sizes"].tolist()))
        return d["counts"], trace, int(d["presampled"]), int(d["epoch_batches"]), int(d["start"])
    sampler = SaintRandomWalkSampler(g, roots, walk, train, seed=args.seed, graph_mode="full", cache_limit_bytes=0)
    t = time.perf_counter()
    sampler.compute_normalization(coverage=args.coverage)
    presampled = sampler.stats.num_subgraphs
    _log(f"# pre-sampling (coverage {args.coverage:g}): {presampled} subgraphs in {time.perf_counter() - t:.1f} s; "
         f"epoch = {len(sampler)} batches")
    start = presampled if args.trace_start is None else args.trace_start
    trace = make_trace(sampler, start, epochs * len(sampler))
    counts = sampler.stats.node_count.cpu()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"counts": counts, "flat": torch.cat(trace), "sizes": torch.tensor([b.numel() for b in trace]),
                "presampled": presampled, "epoch_batches": len(sampler), "start": start}, tmp)
    tmp.replace(path)
    return counts, trace, presampled, len(sampler), start


def build_policy(name: str, scores: dict[str, np.ndarray], trace: list[torch.Tensor], window: int,
                 static_fraction: float) -> CachePolicy:
    """The policy ``name`` from precomputed scores (PageRank is computed once per run)."""
    warm = scores["saint"]
    if name in STATIC:
        return StaticPolicy(scores[name.split("-", 1)[1]], name)
    if name == "best-static":
        return StaticPolicy(scores["future"], name)
    if name == "lru":
        return LRUPolicy(warm)
    if name == "s3fifo":
        return S3FIFOPolicy(warm)
    if name == "hybrid":
        return HybridPolicy(warm, static_fraction)
    if name.startswith("planned"):
        return PlannedPolicy(window, warm)
    if name == "belady":
        return BeladyPolicy(trace)
    raise ConfigError(f"bench_cache: unknown policy {name!r}")


def warm_up_kernels(dim: int, dtype: torch.dtype) -> None:
    """Run every policy once on a tiny store, so that numba's first-call compile (or cache load)
    of each kernel is not timed as bookkeeping."""
    n = 512
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, dim, generator=gen).to(dtype)
    trace = [torch.randperm(n, generator=gen)[:int(k)] for k in (200, 300, 100, 400, 250, 300)]
    scores = {k: torch.rand(n, generator=gen).double().numpy() for k in ("degree", "saint", "pagerank", "future")}
    plain = InMemoryFeatureStore(x, check_finite=False)
    for name in POLICIES:
        for cap in (3, 60):  # small capacities take the compaction and renumbering paths too
            run_policy(x, plain, build_policy(name, scores, trace, 2, 0.5), cap, trace, "cpu")
    # batches smaller than the cache, enough of them to fill LRU's recency log (4x capacity) and compact it
    small = [torch.randperm(n, generator=gen)[:100] for _ in range(40)]
    run_policy(x, plain, build_policy("lru", scores, small, 2, 0.5), 200, small, "cpu")


def run_policy(x: torch.Tensor, plain: InMemoryFeatureStore, policy: CachePolicy, capacity: int,
               trace: list[torch.Tensor], device: str) -> dict[str, Any]:
    """Run ``trace`` through a store; time a plain host-tier gather of every batch alternately."""
    t0 = time.perf_counter()
    store = TieredFeatureStore(x, capacity, policy, cache_device=device)
    build_s = time.perf_counter() - t0
    store.reset_stats()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    buf = torch.empty(max(b.numel() for b in trace), x.size(1), dtype=x.dtype)
    look = store.lookahead
    plain_s = reuse_s = tiered_s = 0.0
    clock = time.thread_time  # CPU seconds of this thread: robust to other load (torch runs single-threaded here)
    for t, ids in enumerate(trace):
        a = clock()
        ref = plain.gather(ids, device)
        sync()
        b = clock()
        torch.index_select(x, 0, ids, out=buf[:ids.numel()])
        c = clock()
        if look:
            store.plan(trace[t:t + look])
        out = store.gather(ids)
        sync()
        d = clock()
        plain_s += b - a
        reuse_s += c - b
        tiered_s += d - c
        if t == 0 or t == len(trace) - 1:
            assert torch.equal(out.cpu(), ref.cpu()), "tiered rows differ from the in-memory gather"
    s = store.stats()
    cache, back = s["cache"], s["host"]
    nb = len(trace)
    return {
        "hit_rate": cache["hit_rate"], "hits": cache["hits"], "requests": cache["requests"],
        "cache_bytes": cache["bytes"], "host_bytes": back["bytes"], "preload_bytes": back["preloaded_bytes"],
        "requested_bytes": cache["requests"] * store._row_bytes,
        "host_bytes_reduction": 1.0 - back["bytes"] / max(cache["requests"] * store._row_bytes, 1),
        "admitted_rows": cache["admitted_rows"], "unplanned_batches": cache["unplanned_batches"],
        "bookkeeping_us_per_batch": 1e6 * cache["bookkeeping_s"] / nb,
        "policy_us_per_batch": 1e6 * cache["policy_s"] / nb, "plan_us_per_batch": 1e6 * cache["plan_s"] / nb,
        "maps_us_per_batch": 1e6 * cache["maps_s"] / nb, "admit_copy_us_per_batch": 1e6 * cache["admit_copy_s"] / nb,
        "plain_gather_us_per_batch": 1e6 * plain_s / nb, "reused_buffer_gather_us_per_batch": 1e6 * reuse_s / nb,
        "tiered_gather_us_per_batch": 1e6 * tiered_s / nb,
        "bookkeeping_vs_plain_gather": cache["bookkeeping_s"] / max(plain_s, 1e-12),
        "bookkeeping_vs_reused_gather": cache["bookkeeping_s"] / max(reuse_s, 1e-12),
        "build_s": build_s, **policy.describe(),
    }


def gpu_gathers(x: torch.Tensor, trace: list[torch.Tensor], warm: np.ndarray, fraction: float,
                device: str) -> dict[str, Any]:
    """Item 7 of the issue, for a GPU session: feature gathering time over the trace's batches,
    (a) plain: CPU ``index_select`` + pinned copy; (b) tiered, cache on the GPU, misses by
    CPU gather + copy; (c) tiered with the zero-copy kernel; (d) all rows on the GPU."""
    from gnnsys.storage.uva import triton_available

    sync = torch.cuda.synchronize
    out: dict[str, Any] = {"fraction": fraction}
    pinned = x.pin_memory()

    def timed(fn) -> float:
        fn(trace[0])
        sync()
        t = time.perf_counter()
        for ids in trace:
            fn(ids)
        sync()
        return time.perf_counter() - t

    def plain(ids: torch.Tensor) -> torch.Tensor:  # a fresh pinned buffer: no race with the last async copy
        buf = torch.empty((ids.numel(), x.size(1)), dtype=x.dtype, pin_memory=True)
        torch.index_select(pinned, 0, ids, out=buf)
        return buf.to(device, non_blocking=True)

    out["plain_s"] = timed(plain)
    cap = int(fraction * x.size(0))
    for zc in (False, True):
        if zc and not triton_available():
            out["zero_copy_s"] = None
            continue
        store = TieredFeatureStore(pinned, cap, StaticPolicy(warm, "static-saint"), cache_device=device,
                                   zero_copy=zc)
        out["zero_copy_s" if zc else "tiered_copy_s"] = timed(store.gather)
        out["hit_rate"] = store.stats()["cache"]["hit_rate"]
        del store
    full = x.to(device)
    out["all_on_gpu_s"] = timed(lambda ids: full.index_select(0, ids.to(device, non_blocking=True)))
    rows = sum(b.numel() for b in trace)
    out["bytes"] = rows * x.size(1) * x.element_size()
    for k in ("plain_s", "tiered_copy_s", "zero_copy_s", "all_on_gpu_s"):
        if out.get(k):
            out[k.replace("_s", "_GBps")] = out["bytes"] / out[k] / 1e9
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    if args.quick:
        n, deg, roots, walk, epochs, dim = 60_000, 20.0, 300, 2, 3, 16
    else:
        n, deg, roots, walk, epochs, dim = args.num_nodes, args.avg_degree, args.roots, args.walk_length, \
            args.epochs, args.dim
    t = time.perf_counter()
    g = shuffled_graph(n, deg, args.exponent)
    _log(f"# graph (node ids shuffled): {g.num_nodes} nodes, {g.num_edges} directed edges, max degree "
         f"{int(g.degree().max())} ({time.perf_counter() - t:.1f} s)")
    gen = torch.Generator().manual_seed(args.seed)
    if args.train_fraction < 1.0:
        train = torch.randperm(n, generator=gen)[:int(args.train_fraction * n)].sort().values
    else:
        train = None
    key = (f"n{n}_d{deg:g}_e{args.exponent:g}_shuffled_rw{roots}x{walk}_c{args.coverage:g}_tf{args.train_fraction:g}"
           f"_s{args.seed}_ep{epochs}_ts{args.trace_start}")
    t = time.perf_counter()
    counts, trace, presampled, epoch_batches, start = sampled_trace(g, train, roots, walk, epochs, args, key)
    sizes = np.array([b.numel() for b in trace])
    _log(f"# trace: {len(trace)} batches ({epochs} epochs of {epoch_batches}) from stream index {start}, after "
         f"{presampled} pre-sampled subgraphs; {sizes.mean():.0f} rows a batch (max {sizes.max()}); "
         f"{time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    scores = {"degree": degree_score(g), "saint": counts.double().numpy(),
              "future": trace_counts(trace, n)}
    scores["pagerank"] = reverse_pagerank(g, train)
    _log(f"# scores (degree, C_v, reverse PageRank, future counts): {time.perf_counter() - t:.1f} s")
    x = torch.randn(n, dim, generator=gen)
    warm_up_kernels(dim, x.dtype)
    if args.device.startswith("cuda"):
        x = x.pin_memory()  # once: every store's host tier then uses it as it is
    plain = InMemoryFeatureStore(x, check_finite=False)
    window = args.window or epoch_batches  # default: one epoch of batches
    chosen = [p for p in POLICIES if not args.policies or p in args.policies]
    for must in ("belady", "best-static", "planned"):  # the targets compare against these
        if must not in chosen:
            chosen.append(must)
    policies = chosen + [f"planned@{w}" for w in args.extra_windows if w != window]
    results: dict[str, Any] = {
        "config": {"num_nodes": g.num_nodes, "num_edges": g.num_edges, "exponent": args.exponent, "dim": dim,
                   "dtype": "float32", "sampler": "saint-rw", "roots": roots, "walk_length": walk,
                   "train_fraction": args.train_fraction, "coverage": args.coverage, "presampled": presampled,
                   "epoch_batches": epoch_batches, "epochs": epochs, "trace_batches": len(trace),
                   "trace_start": start, "mean_batch_rows": float(sizes.mean()), "window": window,
                   "static_fraction": args.static_fraction, "device": args.device, "policies": policies,
                   "capacities": list(args.capacities),
                   "torch_threads": torch.get_num_threads(), "quick": bool(args.quick)},
        "capacities": {}}
    for frac in args.capacities:
        cap = int(frac * n)
        row: dict[str, Any] = {}
        for name in policies:
            w = int(name.split("@")[1]) if "@" in name else window
            pol = build_policy(name, scores, trace, w, args.static_fraction)
            row[name] = r = run_policy(x, plain, pol, cap, trace, args.device)
            _log(f"  {frac:5.0%} {name:16s} hit {r['hit_rate']:.4f}  bookkeeping {r['bookkeeping_us_per_batch']:7.1f} "
                 f"us/batch = {r['bookkeeping_vs_plain_gather']:6.1%} of a plain gather "
                 f"({r['plain_gather_us_per_batch']:.0f} us; reused buffer "
                 f"{r['reused_buffer_gather_us_per_batch']:.0f})")
        results["capacities"][f"{frac:g}"] = row
    results["targets"] = targets(results)
    if args.device.startswith("cuda"):
        results["gpu_gathers"] = gpu_gathers(x, trace[:epoch_batches], scores["saint"], 0.1, args.device)
    return results


def targets(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's four targets, per capacity."""
    out: dict[str, Any] = {}
    for frac, row in results["capacities"].items():
        bel, best = row["belady"]["hit_rate"], row["best-static"]["hit_rate"]
        top_static = max((k for k in STATIC if k in row), key=lambda k: row[k]["hit_rate"], default="best-static")
        dyn = [k for k in row if k not in ("belady", "best-static")]
        out[frac] = {
            "planned_vs_belady": row["planned"]["hit_rate"] / bel if bel else None,
            "best_static_policy": top_static,
            "best_static_policy_vs_best_set": row[top_static]["hit_rate"] / best if best else None,
            "host_bytes_reduced_by_hit_rate": all(
                row[k]["host_bytes_reduction"] >= row[k]["hit_rate"] - 1e-12 for k in row),
            "max_bookkeeping_vs_plain_gather": {k: row[k]["bookkeeping_vs_plain_gather"] for k in dyn},
        }
    return out


def print_table(results: dict[str, Any]) -> None:
    """Hit rates (policies x capacities), then bytes and bookkeeping at each capacity."""
    caps = list(results["capacities"])
    names = list(results["capacities"][caps[0]])
    print("\nhit rate (share of requested rows served by the cache tier)")
    print(f"{'policy':18s}" + "".join(f"{float(c):>9.0%}" for c in caps))
    for k in names:
        print(f"{k:18s}" + "".join(f"{results['capacities'][c][k]['hit_rate']:9.4f}" for c in caps))
    print(f"{'planned/belady':18s}" + "".join(f"{results['targets'][c]['planned_vs_belady']:9.3f}" for c in caps))
    print(f"{'best static/set':18s}" + "".join(
        f"{results['targets'][c]['best_static_policy_vs_best_set']:9.3f}" for c in caps))
    print("\nbookkeeping per batch (us) | as a share of one plain host-tier gather of that batch")
    print(f"{'policy':18s}" + "".join(f"{float(c):>16.0%}" for c in caps))
    for k in names:
        cells = []
        for c in caps:
            r = results["capacities"][c][k]
            cells.append(f"{r['bookkeeping_us_per_batch']:7.1f} {r['bookkeeping_vs_plain_gather']:7.1%}")
        print(f"{k:18s}" + "".join(f"{s:>16s}" for s in cells))
    mid = caps[len(caps) // 2]
    print(f"\nbookkeeping at {float(mid):.0%} (us a batch): policy decisions / plan() / slot-map updates "
          f"(+ admitted-row copies, data movement)")
    for k in names:
        r = results["capacities"][mid][k]
        print(f"{k:18s} {r['policy_us_per_batch']:8.1f} / {r['plan_us_per_batch']:7.1f} / "
              f"{r['maps_us_per_batch']:7.1f}  (+{r['admit_copy_us_per_batch']:.1f})")
    r0 = results["capacities"][caps[0]][names[0]]
    print(f"(plain gather {r0['plain_gather_us_per_batch']:.0f} us a batch, into a reused buffer "
          f"{r0['reused_buffer_gather_us_per_batch']:.0f} us)")
    print("\nbytes moved over the trace (GB): cache tier / host tier (+ preload) / host tier without a cache")
    for c in caps:
        row = results["capacities"][c]
        cells = ", ".join(f"{k} {row[k]['cache_bytes'] / 1e9:.2f}/{row[k]['host_bytes'] / 1e9:.2f}"
                          f"(+{row[k]['preload_bytes'] / 1e9:.2f})" for k in ("static-saint", "s3fifo", "planned")
                          if k in row)
        print(f"{float(c):4.0%}: no cache {row[names[0]]['requested_bytes'] / 1e9:.2f}; {cells}")
    if "gpu_gathers" in results:
        print("\nGPU gathers:", json.dumps(results["gpu_gathers"], indent=1))


def plot(results: dict[str, Any], path: str) -> None:
    """Hit rate against capacity, one line per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    caps = list(results["capacities"])
    xs = [100 * float(c) for c in caps]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    names = list(results["capacities"][caps[0]])
    colors = plt.cm.tab20(np.linspace(0, 1, 20))[::max(1, 20 // max(len(names), 1))]
    for k, color in zip(names, colors):
        style = "--" if k in ("belady", "best-static") else "-"
        ax.plot(xs, [results["capacities"][c][k]["hit_rate"] for c in caps], style, marker="o", label=k,
                color=color)
    cfg = results["config"]
    ax.set_xlabel("cache capacity (% of rows)")
    ax.set_ylabel("hit rate")
    ax.set_title(f"{cfg['num_nodes']:,} nodes, RW {cfg['roots']}x{cfg['walk_length']}, {cfg['trace_batches']} batches")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"# plot: {path}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark's options (shared with ``gnnsys bench cache``)."""
    a = p.add_argument
    a("--quick", action="store_true", help="small smoke run (60k nodes, RW 300x2, 3 epochs)")
    a("--num-nodes", type=int, default=2_000_000)
    a("--avg-degree", type=float, default=20.0, help="directed edges per node (x2 of the undirected degree)")
    a("--exponent", type=float, default=2.5, help="power-law exponent of the generated graph")
    a("--dim", type=int, default=128, help="feature width (float32)")
    a("--roots", type=int, default=3000, help="random-walk roots per batch")
    a("--walk-length", type=int, default=2)
    a("--epochs", type=int, default=5, help="epochs in the trace")
    a("--coverage", type=float, default=50.0, help="GraphSAINT pre-sampling coverage (training's default)")
    a("--train-fraction", type=float, default=1.0, help="share of nodes training (roots; PageRank teleport)")
    a("--trace-start", type=int, default=None, help="first stream index of the trace (default: after pre-sampling)")
    a("--window", type=int, default=None, help="planned cache's window in batches (default: one epoch)")
    a("--extra-windows", default="16,64", help="more planned windows to report, comma-separated ('' for none)")
    a("--capacities", default=",".join(f"{c:g}" for c in CAPACITIES), help="cache sizes, fractions of the rows")
    a("--policies", default="", help="comma-separated subset of the policies (belady, best-static and planned "
      "always run: the targets compare against them); default all")
    a("--static-fraction", type=float, default=0.8, help="hybrid: share of the cache that is static")
    a("--device", default="cpu", help="cache device: cpu or cuda[:i]")
    a("--seed", type=int, default=0)
    a("--threads", type=int, default=1, help="torch threads while timing gathers")
    a("--out", default=None,
      help="JSON file (default results/bench_cache.json; --quick: results/bench_cache_quick.json)")
    a("--plot", default=None, help="write a PNG of hit rate against capacity here")


def main(args: argparse.Namespace) -> int:
    """Run, print the table, write JSON (and the plot)."""
    args.extra_windows = [int(w) for w in str(args.extra_windows).split(",") if w.strip()]
    args.capacities = [float(c) for c in str(args.capacities).split(",") if c.strip()]
    args.policies = [p.strip() for p in str(args.policies).split(",") if p.strip()]
    unknown = [p for p in args.policies if p not in POLICIES]
    if unknown or not args.capacities or not all(0.0 < c <= 1.0 for c in args.capacities):
        raise ConfigError(f"bench cache: --policies takes names from {', '.join(POLICIES)} (got {unknown}); "
                          f"--capacities fractions in (0, 1] (got {args.capacities})")
    results = run(args)
    print_table(results)
    out = Path(args.out or ("results/bench_cache_quick.json" if args.quick else "results/bench_cache.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"# results: {out}")
    if args.plot:
        plot(results, args.plot)
    return 0


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    raise SystemExit(main(parser.parse_args()))
