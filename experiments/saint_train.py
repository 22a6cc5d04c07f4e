"""Training on GraphSAINT subgraphs: accuracy against full batch, memory at scale, links.

    python -m gnnsys.experiments.saint_train planetoid [--datasets cora citeseer] [--seeds 0 1 2]
    python -m gnnsys.experiments.saint_train scale [--num-nodes 2000000] [--steps 30]
    python -m gnnsys.experiments.saint_train ddi [--epochs 20]

- ``planetoid``: test accuracy of full-batch GCN and of each sampler (backprop trainer,
  ``gnnsys.api.train``, full-batch evaluation), mean over seeds; target: within 2 points.
- ``scale``: a generated power-law graph (2M nodes, ~40M directed edges, 128-d features)
  trained with a sampler; reports peak RSS (``resource.getrusage``) against the RSS of the
  data alone and the size of a subgraph. No full-graph step: memory bounded by the subgraph.
- ``ddi``: ogbl-ddi Hits@20 with ``saint-edge`` against full-graph training (same epochs).

Results print as tables and, with ``--json``, go to a file.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from gnnsys.experiments.suites import SAINT, SAINT_SAMPLERS

from gnnsys.config import DEFAULT_SAINT_UNSEEN_EDGES, SAINT_UNSEEN_EDGES, TrainConfig

SAMPLERS = SAINT_SAMPLERS


def planetoid_case(dataset: str, sampler: str) -> dict[str, Any]:
    """The ``TrainConfig`` fields of one cell of the planetoid table: the ``saint`` suite's case
    (``gnnsys bench saint``), or the same model on a dataset the suite does not list."""
    for case in SAINT.cases:
        if case.config["dataset"] == dataset.lower() and case.column == sampler:
            return dict(case.config)
    return dict(dataset=dataset, layer="gcn", sampler=sampler)


def _rss_mib() -> float:
    """Current resident set size (MiB) from /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:  # pragma: no cover - non-Linux
        pass
    return float("nan")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ----------------------------------------------------------------- planetoid
def planetoid(args: argparse.Namespace) -> dict[str, Any]:
    """Full batch vs each sampler on Cora / CiteSeer (test accuracy, mean over seeds)."""
    from gnnsys.api import train

    out: dict[str, Any] = {}
    for ds in args.datasets:
        out[ds] = {}
        for sampler in (() if args.no_full else ("full",)) + tuple(args.samplers):
            accs, t0 = [], time.perf_counter()
            for seed in args.seeds:
                cfg = TrainConfig(**planetoid_case(ds, sampler), seed=seed, quiet=True, epochs=args.epochs,
                                  data_root=args.data_root, device=args.device, saint_budget=args.budget,
                                  saint_unseen_edges=args.unseen_edges)
                accs.append(train(cfg)["test"])
            out[ds][sampler] = {"test": accs, "mean": statistics.mean(accs),
                                "seconds": time.perf_counter() - t0}
            print(f"{ds:9s} {sampler:10s} test {100 * statistics.mean(accs):5.1f} "
                  f"({', '.join(f'{100 * a:.1f}' for a in accs)})  {time.perf_counter() - t0:.0f} s", flush=True)
    if args.no_full:
        return out
    print("\n| dataset | full batch | " + " | ".join(args.samplers) + " |")
    print("|---|---|" + "---|" * len(args.samplers))
    for ds, r in out.items():
        full = 100 * r["full"]["mean"]
        cells = [f"{100 * r[s]['mean']:.1f} ({100 * r[s]['mean'] - full:+.1f})" for s in args.samplers]
        print(f"| {ds} | {full:.1f} | " + " | ".join(cells) + " |")
    return out


# --------------------------------------------------------------------- scale
def scale(args: argparse.Namespace) -> dict[str, Any]:
    """Train on subgraphs of a large generated graph; report memory."""
    from gnnsys.samplers.saint import make_saint_loader

    from gnnsys.api import model_for
    from gnnsys.datasets.loaders.synthetic import load_powerlaw
    from gnnsys.loading import LoadingPipeline, operator_norms
    from gnnsys.trainers.backprop import node_loss

    rss0 = _rss_mib()
    t0 = time.perf_counter()
    ds = load_powerlaw("powerlaw", num_nodes=args.num_nodes, avg_degree=args.avg_degree,
                       num_features=args.dim, exponent=args.exponent, seed=0)
    t_data = time.perf_counter() - t0
    rss_data = _rss_mib()
    print(f"data: {ds} in {t_data:.0f} s; RSS {rss_data:.0f} MiB (process start {rss0:.0f} MiB)", flush=True)
    cfg = TrainConfig(dataset="powerlaw", sampler=args.sampler, saint_coverage=args.coverage,
                      saint_budget=args.budget, saint_roots=args.roots, hidden=args.hidden, seed=0)
    cfg = cfg.resolved("powerlaw", "node")
    t0 = time.perf_counter()
    sampler = make_saint_loader(ds, cfg)
    t_sampler = time.perf_counter() - t0
    rss_sampler = _rss_mib()
    print(f"sampler {args.sampler}: built + pre-sampled (coverage {args.coverage:g}, "
          f"{sampler.stats.num_subgraphs} subgraphs) in {t_sampler:.0f} s; RSS {rss_sampler:.0f} MiB", flush=True)
    model = model_for(ds, cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    model.train()
    losses, sizes, t0 = [], [], time.perf_counter()
    rss_train = rss_sampler
    batches = LoadingPipeline(sampler, ds, operators=operator_norms(model))
    it = iter(batches)
    for step in range(args.steps):
        try:
            batch = next(it)
        except StopIteration:
            it = iter(batches)
            batch = next(it)
        opt.zero_grad()
        loss = node_loss(model(batch), batch, batch.y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        sizes.append((batch.num_nodes, batch.num_edges))
        rss_train = max(rss_train, _rss_mib())
        if step % max(1, args.steps // 10) == 0:
            print(f"step {step:4d} loss {losses[-1]:.4f} subgraph {batch.num_nodes} nodes "
                  f"{batch.num_edges} edges; RSS {_rss_mib():.0f} MiB", flush=True)
    t_train = time.perf_counter() - t0
    peak = _peak_rss_mib()
    n_avg = statistics.mean(s[0] for s in sizes)
    e_avg = statistics.mean(s[1] for s in sizes)
    sub_mib = (n_avg * (args.dim + 2 * args.hidden) * 4 + e_avg * 40) / 2**20
    res = {"nodes": ds.num_nodes, "edges": ds.graph.num_edges, "dim": args.dim, "sampler": args.sampler,
           "rss_data_mib": rss_data, "rss_after_sampler_mib": rss_sampler, "peak_rss_mib": peak,
           "max_rss_during_training_mib": rss_train,
           "subgraph_nodes": n_avg, "subgraph_edges": e_avg, "subgraph_estimate_mib": sub_mib,
           "train_seconds": t_train, "steps": args.steps, "first_loss": losses[0], "last_loss": losses[-1],
           "presample_seconds": t_sampler}
    graph_mib = (ds.graph.num_edges * 8 + ds.num_nodes * (args.dim * 4 + 8)) / 2**20
    print(f"\ngraph {ds.num_nodes} nodes / {ds.graph.num_edges} edges / {args.dim}-d: arrays "
          f"{graph_mib:.0f} MiB; RSS with data {rss_data:.0f} MiB, after building the sampler and "
          f"pre-sampling {rss_sampler:.0f} MiB, at most {rss_train:.0f} MiB while training "
          f"(+{rss_train - rss_sampler:.0f} MiB; a subgraph of {n_avg:.0f} nodes / {e_avg:.0f} edges is "
          f"~{sub_mib:.0f} MiB of activations and indices); peak RSS of the run (getrusage) {peak:.0f} MiB, "
          f"set by the one-time build temporaries; {args.steps} steps in {t_train:.0f} s, loss "
          f"{losses[0]:.3f} -> {losses[-1]:.3f}")
    return res


# ----------------------------------------------------------------------- ddi
def ddi(args: argparse.Namespace) -> dict[str, Any]:
    """ogbl-ddi Hits@20: saint-edge vs full graph, each scored at its best-validation checkpoint.

    A saint-edge epoch is ``len(sampler)`` subgraph steps (4 at the default budget) where a
    full-graph epoch is ``|train pairs| / batch`` steps (17), so the sampler gets its own epoch
    count (``--saint-epochs``) to take a similar number of optimizer steps."""
    from gnnsys.api import train

    out: dict[str, Any] = {}
    saint_epochs = args.saint_epochs or args.epochs
    for sampler, epochs in (("full", args.epochs), ("saint-edge", saint_epochs)):
        full = sampler == "full"
        if full and args.no_full:
            continue
        t0 = time.perf_counter()
        cfg = TrainConfig(dataset="ogbl-ddi", sampler=sampler, epochs=epochs, seed=args.seed, quiet=True,
                          data_root=args.data_root, device=args.device, saint_budget=args.edge_budget,
                          saint_coverage=args.coverage, saint_unseen_edges=args.unseen_edges,
                          eval_every=args.eval_every if full else args.saint_eval_every or args.eval_every,
                          patience=args.patience if full else args.saint_patience)
        r = train(cfg)
        out[sampler] = {"val": r["val"], "test": r["test"], "epochs": epochs, "seconds": time.perf_counter() - t0,
                        "history": r["runs"][0].get("history")}
        print(f"ogbl-ddi {sampler:10s} {epochs} epochs: val Hits@20 {r['val']:.4f} test {r['test']:.4f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    if "full" in out:
        ratio = out["saint-edge"]["test"] / max(out["full"]["test"], 1e-12)
        print(f"\nsaint-edge / full test Hits@20 = {ratio:.2f} (target >= 0.9)")
        out["ratio"] = ratio
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("planetoid")
    a.add_argument("--datasets", nargs="+", default=["cora", "citeseer"])
    a.add_argument("--samplers", nargs="+", default=list(SAMPLERS))
    a.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    a.add_argument("--epochs", type=int, default=None)
    a.add_argument("--no-full", action="store_true", help="skip the full-batch baseline")
    a.add_argument("--budget", type=int, default=None, help="sampler budget (default: per sampler)")
    b = sub.add_parser("scale")
    b.add_argument("--num-nodes", type=int, default=2_000_000)
    b.add_argument("--avg-degree", type=float, default=18.6, help="~20 directed edges per node after dedupe")
    b.add_argument("--exponent", type=float, default=2.5)
    b.add_argument("--dim", type=int, default=128)
    b.add_argument("--hidden", type=int, default=128)
    b.add_argument("--sampler", default="saint-rw", choices=SAMPLERS)
    b.add_argument("--budget", type=int, default=None)
    b.add_argument("--roots", type=int, default=None)
    b.add_argument("--coverage", type=float, default=2.0, help="pre-sampling coverage (50 takes long)")
    b.add_argument("--steps", type=int, default=30)
    c = sub.add_parser("ddi")
    c.add_argument("--epochs", type=int, default=20)
    c.add_argument("--eval-every", type=int, default=5)
    c.add_argument("--saint-epochs", type=int, default=None, help="saint-edge epochs (default: --epochs)")
    c.add_argument("--edge-budget", type=int, default=None)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--patience", type=int, default=50, help="full-graph epochs without a better validation score")
    c.add_argument("--saint-eval-every", type=int, default=None, help="default: --eval-every")
    c.add_argument("--saint-patience", type=int, default=None, help="saint-edge patience in epochs (default: none)")
    c.add_argument("--no-full", action="store_true", help="skip the full-graph run")
    c.add_argument("--coverage", type=float, default=50.0, help="saint-edge pre-sampling coverage")
    for q in (a, c):
        q.add_argument("--unseen-edges", choices=SAINT_UNSEEN_EDGES, default=DEFAULT_SAINT_UNSEEN_EDGES,
                       help="weight of edges pre-sampling never saw: once (counted once, C_v; the default) or "
                            "clip (the paper-exact original: 1e4)")
    for q in (a, b, c):
        q.add_argument("--device", default="cpu")
        q.add_argument("--data-root", default=None)
        q.add_argument("--json", default=None)
    args = p.parse_args(argv)
    res = {"planetoid": planetoid, "scale": scale, "ddi": ddi}[args.cmd](args)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2, default=float))


if __name__ == "__main__":
    main()
