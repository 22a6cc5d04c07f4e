"""End-to-end GraphSAINT training steps/s against DGL 1.1.3, with a per-stage breakdown.

Same run, same generated power-law graph (default 1M nodes, ~20M directed edges), same
128-d float32 features and labels, same budgets (node 8000, edge 6000, random walk 3000
roots x 2), same model size (2 layers, hidden 128, Adam), single process. For each sampler
and layer (GCN, SAGE) it prints:

- the stages of one step, each timed on its own: sample, feature fetch, operator build,
  forward, backward, optimizer (DGL builds its graph structures inside its forward);
- the operator overhead: a step on a fresh batch minus the same step on a batch whose
  operators are already built, as a share of the step;
- end-to-end steps/s: ours through the loading pipeline with its default (prefetching only
  where the worker thread has a core that torch's threads leave free), and with prefetching on
  and off, DGL as a plain loop (sample, fetch, step) and through its ``DataLoader`` with one
  worker process; measured in ``--rounds`` rounds that alternate ours and DGL's, each rate the
  median of its rounds (a slow spell of a shared machine falls on both sides);
- ours with GraphSAINT's normalization on (DGL's sampler computes none): the cost of being
  unbiased.

    python -m gnnsys.experiments.bench_train_step                  # the full benchmark
    python -m gnnsys.experiments.bench_train_step --quick          # small graph, seconds
    python -m gnnsys.experiments.bench_train_step --device cuda    # ours only (DGL 1.1.3 has no CUDA build here)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from gnnsys.experiments.bench_samplers import add_graph_arguments, bench_graph
from gnnsys.models import build_model
from gnnsys.samplers.saint_samplers import SaintEdgeSampler, SaintNodeSampler, SaintRandomWalkSampler
from gnnsys.storage import InMemoryFeatureStore

from gnnsys.loading import BuildOperators, CopyToDevice, FetchFeatures, LoadingPipeline, operator_norms
from gnnsys.trainers.backprop import node_loss

TARGET_X_DGL = 2.0
OPERATOR_OVERHEAD_MAX = 0.10
#: Rates measured in the first round only (DGL's DataLoader with a worker: a reference, not the ratio).
ONCE = ("dataloader_1worker",)


def _ours_sampler(kind: str, g, b: dict[str, int], device: str, epoch: int):
    """Our sampler of ``kind`` on ``g`` (all nodes training), ``epoch`` subgraphs an epoch."""
    kw = dict(device=device, group_size=b["group"], num_subgraphs=epoch)
    if kind == "node":
        return SaintNodeSampler(g, b["node"], **kw)
    if kind == "edge":
        return SaintEdgeSampler(g, b["edge"], **kw)
    return SaintRandomWalkSampler(g, b["roots"], b["walk_length"], **kw)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class _Timer:
    """Accumulates seconds per stage name."""

    def __init__(self, device: str) -> None:
        self.device, self.t = device, {}

    def __call__(self, name: str, fn, *a):
        _sync(self.device)
        t0 = time.perf_counter()
        out = fn(*a)
        _sync(self.device)
        self.t[name] = self.t.get(name, 0.0) + time.perf_counter() - t0
        return out


def ours(kind: str, layer: str, g, x: torch.Tensor, y: torch.Tensor, num_classes: int, args) -> dict[str, Any]:
    """Our stages, operator overhead and end-to-end rates for one sampler and layer."""
    dev = args.device
    torch.manual_seed(0)
    sampler = _ours_sampler(kind, g, args.budgets, dev, args.steps + 1)
    model = build_model(layer, x.size(1), args.hidden, num_classes, num_layers=2, dropout=0.0).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    fetch = FetchFeatures(InMemoryFeatureStore(x, check_finite=False), y)
    ops = BuildOperators(operator_norms(model))
    copy = CopyToDevice(dev)

    def step(batch) -> None:
        opt.zero_grad()
        node_loss(model(batch), batch, y).backward()
        opt.step()

    # ---- stages, each on its own, over the same batches
    n = args.steps
    tm = _Timer(dev)
    pos = 10_000
    for i in range(n + 2):  # two warm-up steps (kernel compilation, allocator)
        if i == 2:
            tm.t.clear()
        b = tm("sample", lambda k=pos + i: sampler.sample_at([k])[0])
        b = tm("fetch", lambda b=b: copy(fetch(b)))
        b = tm("operators", ops, b)
        opt.zero_grad()
        out = tm("forward", model, b)
        loss = node_loss(out, b, y)
        tm("backward", loss.backward)
        tm("optimizer", opt.step)
    stages = {k: v / n * 1e3 for k, v in tm.t.items()}

    # ---- operator overhead: fresh-batch step vs the same batches with operators built, in
    # rounds of fresh batches (the difference of two timings: medians steady it)
    def timed_pass(batches: list) -> float:
        _sync(dev)
        t0 = time.perf_counter()
        for b in batches:
            step(b)
        _sync(dev)
        return (time.perf_counter() - t0) / len(batches) * 1e3

    fresh_ms, cached_ms = [], []
    for r in range(args.rounds):
        batches = [copy(fetch(b)) for b in sampler.sample_at(range(20_000 + r * n, 20_000 + (r + 1) * n))]
        step(copy(fetch(sampler.sample_at([19_999])[0])))  # warm, on a batch of its own
        fresh_ms.append(timed_pass(batches))  # builds each batch's operators inside the step
        cached_ms.append(timed_pass(batches))  # operators cached on the batches now
    fresh, cached = statistics.median(fresh_ms), statistics.median(cached_ms)

    # ---- end to end through the loading pipeline: measured by the caller in rounds alternating
    # with the peer's; then once with GraphSAINT's normalization on (it changes the sampler)
    default = LoadingPipeline(sampler, fetch=fetch, device=dev, operators=operator_norms(model)).prefetch

    def normalized() -> dict[str, Any]:
        sampler.compute_normalization(args.coverage)
        return {"normalized": _pipeline_rate(sampler, fetch, model, opt, y, dev, default, n, args),
                "presample_subgraphs": sampler.stats.num_subgraphs}

    rate_fns = {f"prefetch{p}": (lambda p=p: _pipeline_rate(sampler, fetch, model, opt, y, dev, p, n, args))
                for p in (1, 0)}
    return {"stages_ms": stages, "fresh_step_ms": fresh, "cached_step_ms": cached,
            "operator_overhead": (fresh - cached) / fresh, "rate_fns": rate_fns, "after_rates": normalized,
            "default_prefetch": default}


def _pipeline_rate(sampler, fetch, model, opt, y, dev, prefetch: int, n: int, args) -> float:
    """Steps/s of ``n`` training steps through ``LoadingPipeline`` (an epoch of ``n + 1``
    subgraphs: one warm-up step, then ``n`` timed)."""
    pipe = LoadingPipeline(sampler, fetch=fetch, device=dev, operators=operator_norms(model), prefetch=prefetch)
    it = iter(pipe)
    b = next(it)
    opt.zero_grad()
    node_loss(model(b), b, y).backward()
    opt.step()
    _sync(dev)
    t0 = time.perf_counter()
    for b in it:
        opt.zero_grad()
        node_loss(model(b), b, y).backward()
        opt.step()
    _sync(dev)
    return n / (time.perf_counter() - t0)


def dgl_peer(kind: str, layer: str, g, x: torch.Tensor, y: torch.Tensor, num_classes: int, args) -> dict[str, Any]:
    """DGL 1.1.3: ``SAINTSampler`` + ``dgl.nn`` layers, the same sizes."""
    import dgl
    from dgl.dataloading import SAINTSampler
    from dgl.nn import GraphConv, SAGEConv

    torch.manual_seed(0)
    dg = dgl.graph(("csr", (g.indptr, g.indices, torch.arange(g.num_edges))), num_nodes=g.num_nodes)
    b = args.budgets
    mode, budget = {"node": ("node", b["node"]), "edge": ("edge", b["edge"]),
                    "walk": ("walk", (b["roots"], b["walk_length"]))}[kind]
    sampler = SAINTSampler(mode=mode, budget=budget)
    d, h = x.size(1), args.hidden
    if layer == "gcn":
        convs = torch.nn.ModuleList([GraphConv(d, h, activation=F.relu, allow_zero_in_degree=True),
                                     GraphConv(h, num_classes, allow_zero_in_degree=True)])
    else:
        convs = torch.nn.ModuleList([SAGEConv(d, h, "mean", activation=F.relu), SAGEConv(h, num_classes, "mean")])
    opt = torch.optim.Adam(convs.parameters(), lr=0.01)

    def forward(sg, feat):
        hh = feat
        for conv in convs:
            hh = conv(sg, hh)
        return hh

    n = args.steps
    tm = _Timer("cpu")
    for i in range(n + 2):
        if i == 2:
            tm.t.clear()
        sg = tm("sample", sampler.sample, dg, None)
        feat, lab = tm("fetch", lambda sg=sg: (x[sg.ndata[dgl.NID]], y[sg.ndata[dgl.NID]]))
        opt.zero_grad()
        out = tm("forward", forward, sg, feat)
        loss = F.cross_entropy(out, lab)
        tm("backward", loss.backward)
        tm("optimizer", opt.step)
    stages = {k: v / n * 1e3 for k, v in tm.t.items()}

    def loop(subgraphs) -> float:
        it = iter(subgraphs)
        next(it)
        t0 = time.perf_counter()
        for _ in range(n):
            sg = next(it)
            ids = sg.ndata[dgl.NID]
            opt.zero_grad()
            F.cross_entropy(forward(sg, x[ids]), y[ids]).backward()
            opt.step()
        return n / (time.perf_counter() - t0)

    rate_fns = {"loop": lambda: loop(sampler.sample(dg, None) for _ in range(n + 1))}
    if not args.no_dgl_worker:
        rate_fns["dataloader_1worker"] = lambda: loop(
            dgl.dataloading.DataLoader(dg, torch.arange(n + 1), sampler, num_workers=1))
    return {"stages_ms": stages, "rate_fns": rate_fns}


def _measure_rates(sides: dict[str, dict[str, Any]], rounds: int) -> None:
    """End-to-end rates of every side in ``rounds`` alternating rounds (ours, the peer, ours,
    ...): a slow spell of a shared machine then falls on both; each rate is the median of its
    rounds (``ONCE``: the first round only), the samples are kept."""
    samples: dict[str, dict[str, list[float]]] = {side: {} for side in sides}
    for i in range(rounds):
        for side, r in sides.items():
            for name, fn in r["rate_fns"].items():
                if i == 0 or name not in ONCE:
                    samples[side].setdefault(name, []).append(fn())
    for side, r in sides.items():
        del r["rate_fns"]
        r["rates"] = {name: statistics.median(v) for name, v in samples[side].items()}
        r["rate_samples"] = samples[side]
        after = r.pop("after_rates", None)
        if after is not None:
            extra = after()
            r["rates"]["normalized"] = extra.pop("normalized")
            r.update(extra)


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        args.num_nodes, args.avg_degree = 20_000, 18.6
        args.budgets = dict(node=800, edge=600, roots=300, walk_length=2, group=8)
        args.steps = min(args.steps, 10)
    else:
        args.budgets = dict(node=8000, edge=6000, roots=3000, walk_length=2, group=8)
    g = bench_graph(args.num_nodes, args.avg_degree, args.exponent)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(g.num_nodes, args.dim, generator=gen)
    y = torch.randint(0, args.classes, (g.num_nodes,), generator=gen)
    print(f"# graph: {g.num_nodes} nodes, {g.num_edges} directed edges; {args.dim}-d features, {args.classes} "
          f"classes; 2 layers, hidden {args.hidden}; torch threads {torch.get_num_threads()}; {args.steps} steps "
          "per measurement", flush=True)
    if args.device != "cpu":
        g = g.to(args.device)
        x, y = x.to(args.device), y.to(args.device)
    res: dict[str, Any] = {"graph": {"nodes": g.num_nodes, "edges": g.num_edges}, "budgets": args.budgets,
                           "dim": args.dim, "hidden": args.hidden, "classes": args.classes, "device": args.device,
                           "steps": args.steps, "coverage": args.coverage, "runs": {}}
    for kind in args.samplers:
        for layer in args.layers:
            key = f"{kind}-{layer}"
            r: dict[str, Any] = {"ours": ours(kind, layer, g, x, y, args.classes, args)}
            if args.device == "cpu" and not args.no_dgl:
                r["dgl"] = dgl_peer(kind, layer, g, x, y, args.classes, args)
            _measure_rates(r, args.rounds)
            res["runs"][key] = r
            _print_run(key, r)
    _table(res)
    return res


def _print_run(key: str, r: dict[str, Any]) -> None:
    o = r["ours"]
    st = " ".join(f"{k} {v:.2f}" for k, v in o["stages_ms"].items())
    print(f"{key}: ours stages (ms) {st}; fresh step {o['fresh_step_ms']:.2f} ms, cached-operator step "
          f"{o['cached_step_ms']:.2f} ms (overhead {100 * o['operator_overhead']:.1f}%); steps/s "
          + ", ".join(f"{k} {v:.1f}" for k, v in o["rates"].items()), flush=True)
    if "dgl" in r:
        d = r["dgl"]
        st = " ".join(f"{k} {v:.2f}" for k, v in d["stages_ms"].items())
        print(f"{key}: dgl  stages (ms) {st}; steps/s " + ", ".join(f"{k} {v:.1f}" for k, v in d["rates"].items()),
              flush=True)


def _default_rate(r: dict[str, Any]) -> float:
    """Our end-to-end rate with the loading pipeline's default prefetching."""
    return r["ours"]["rates"][f"prefetch{min(r['ours']['default_prefetch'], 1)}"]


def _table(res: dict[str, Any]) -> None:
    print()
    print("| sampler-layer | ours steps/s (default) | prefetch on | prefetch off | ours, normalized | DGL loop | "
          f"DGL + 1 worker | ours / DGL loop (target >= {TARGET_X_DGL:g}x) | ours / best DGL | operator overhead "
          f"(target <= {100 * OPERATOR_OVERHEAD_MAX:.0f}%) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key, r in res["runs"].items():
        o = r["ours"]["rates"]
        mine = _default_rate(r)
        d = r.get("dgl", {}).get("rates", {})
        loop, wk = d.get("loop"), d.get("dataloader_1worker")
        best = max([v for v in (loop, wk) if v] or [float("nan")])
        f = (lambda v: f"{v:.1f}" if v else "-")  # noqa: E731
        ratio = f"{mine / loop:.2f}x" if loop else "-"
        rb = f"{mine / best:.2f}x" if d else "-"
        print(f"| {key} | {mine:.1f} | {o['prefetch1']:.1f} | {o['prefetch0']:.1f} | {o['normalized']:.1f} | "
              f"{f(loop)} | {f(wk)} | {ratio} | {rb} | {100 * r['ours']['operator_overhead']:.1f}% |")
    print("(default: the loading pipeline's own choice, prefetching only where its worker has a core of its own)")
    print()
    print("per-stage ms (ours / DGL): sample, fetch, operators, forward, backward, optimizer")
    for key, r in res["runs"].items():
        o = r["ours"]["stages_ms"]
        d = r.get("dgl", {}).get("stages_ms", {})
        cells = [f"{o.get(s, 0):.2f} / {d[s]:.2f}" if s in d else f"{o.get(s, 0):.2f} / -"
                 for s in ("sample", "fetch", "operators", "forward", "backward", "optimizer")]
        print(f"| {key} | " + " | ".join(cells) + " |")
    ratios = [_default_rate(r) / r["dgl"]["rates"]["loop"] for r in res["runs"].values() if "dgl" in r]
    if ratios:
        print(f"geometric mean ours / DGL loop: {statistics.geometric_mean(ratios):.2f}x")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small graph smoke run")
    add_graph_arguments(p, num_nodes=1_000_000, avg_degree=18.6, dim=128, walks=False,
                        avg_degree_help="18.6 gives ~20M directed edges on 1M nodes")
    p.add_argument("--steps", type=int, default=40, help="steps per measurement")
    p.add_argument("--rounds", type=int, default=3,
                   help="end-to-end rates: rounds alternating ours and DGL's, the median reported")
    p.add_argument("--coverage", type=float, default=2.0,
                   help="pre-sampling coverage for the normalized run (the per-step cost does not depend on it)")
    p.add_argument("--samplers", nargs="*", default=["node", "edge", "walk"], choices=["node", "edge", "walk"])
    p.add_argument("--layers", nargs="*", default=["gcn", "sage"], choices=["gcn", "sage"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-dgl", action="store_true")
    p.add_argument("--no-dgl-worker", action="store_true", help="skip DGL's DataLoader with a worker process")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error(f"--rounds must be >= 1, got {args.rounds}")
    res = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
