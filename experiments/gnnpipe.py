"""GNNPipe vs graph parallelism vs single-process training: volume, time, bubble, accuracy.

    python -m gnnsys.experiments.gnnpipe --suite accuracy --datasets cora,citeseer --layers 8,16 \\
        --stages 2,4 --out results/gnnpipe_accuracy.json
    python -m gnnsys.experiments.gnnpipe --suite aids --datasets cora --layers 16 --stages 4 \\
        --out results/gnnpipe_aids.json
    python -m gnnsys.experiments.gnnpipe --suite volume --layers 8,16,32 --stages 2,4 \\
        --out results/gnnpipe_volume.json
    python -m gnnsys.experiments.gnnpipe --suite sf --datasets cora --layers 8 --stages 2,4 \\
        --out results/gnnpipe_sf.json

Suites:
- ``accuracy``: test accuracy (at the best validation epoch, and at the last epoch) of
  single-process backprop, GNNPipe (``P`` stages, ``2P`` chunks, stale) and graph-parallel
  training with the same model, initialization and epochs; the accuracy curve of every run.
- ``aids``: GNNPipe with each convergence aid alone (none, warm-up, smoothing γ=0.95,
  gradient clipping) against single-process training, with the curves.
- ``volume``: a generated power-law graph (``--nodes``, ``--degree``): bytes sent per training
  epoch counted at every send/recv, against the analytic count from chunk and halo sizes;
  seconds per training epoch; measured and ideal bubble; pipe vs graph-parallel vs
  single-process (timed as a 1-rank, 1-chunk exact run, which computes exactly what
  single-process training does and records its training time the same way).
- ``sf``: GNNPipe with ForwardGNN SF local losses (no backward half) beside backprop-GNNPipe.

Every run is ``gnnsys.api.train`` (the spawned ranks are local processes, one torch thread
each unless ``--threads``). Times on shared CPU cores are noisy: compare ratios within one run.
The JSON is rewritten after every run, so a partial suite keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from gnnsys.api import train
from gnnsys.config import TrainConfig
from gnnsys.datasets import load_dataset
from gnnsys.pipeline.analytic import graph_parallel_train_bytes, pipe_train_bytes

MODEL = dict(layer="gcn", hidden=64, residual=True, init="kaiming", dropout=0.5, lr=0.01, weight_decay=5e-4,
             patience=None)


def _curve(run: dict[str, Any]) -> list[list[float]]:
    return [[h["epoch"], h.get("valid", float("nan")), h.get("test", float("nan")), h["loss"]]
            for h in run["history"] if "valid" in h]


def summarize(method: str, dataset: str, cfg: TrainConfig, res: dict[str, Any], wall: float) -> dict[str, Any]:
    """One JSON record of a run."""
    run = res["runs"][0]
    hist = run["history"]
    rec: dict[str, Any] = {
        "method": method, "dataset": dataset, "layers": cfg.layers, "stages": cfg.stages or 1,
        "chunks": cfg.chunks, "seed": cfg.seed, "epochs": run["epochs"],
        "test": run["test"], "val": run["val"], "best_epoch": run["best_epoch"],
        "test_last": next((h["test"] for h in reversed(hist) if "test" in h), float("nan")),
        "wall_s": wall, "curve": _curve(run),
        "config": {k: v for k, v in cfg.to_dict().items() if k not in ("extra", "out", "data_root")},
    }
    p = run.get("pipe")
    if p is None:
        rec["epoch_s"] = run["seconds"] / max(run["epochs"], 1)
        rec["train_bytes"] = 0
        return rec
    rec["epoch_s"] = statistics.median(p["epoch_seconds"][1:] or p["epoch_seconds"])
    rec["train_bytes"] = p["train_bytes"][-1]
    rec["bubble"] = statistics.fmean(p["bubble"][1:] or p["bubble"])
    if p["parallel"] == "layer":
        rec["bubble_ideal"] = p["bubble_ideal"]
        n = sum(p["chunk_sizes"])
        rec["predicted_bytes"] = pipe_train_bytes(n, p["widths"], p["stage_layers"], p["train"]) + \
            p.get("sf_extra_bytes", 0)
        rec["chunk_halo"] = p["chunk_halo"]
        rec["stale_epochs"] = p["stale_epochs"]
    else:
        pred = graph_parallel_train_bytes(p["halo"], p["widths"], p["num_params"], p["stages"])
        rec["predicted_bytes"] = pred["total"]
        rec["predicted_halo_bytes"], rec["predicted_allreduce_bytes"] = pred["halo"], pred["allreduce"]
        rec["halo"] = p["halo"]
    rec["bytes_match"] = rec["predicted_bytes"] == rec["train_bytes"]
    rec["train"] = p["train"]
    return rec


def run_one(records: list, out: Path | None, method: str, data: Any, **kw: Any) -> dict[str, Any]:
    cfg = TrainConfig(dataset=data.name, quiet=True, **kw)
    t0 = time.perf_counter()
    res = train(cfg, data=data)
    cfg_used = TrainConfig(**{**res["config"], "extra": {}})
    rec = summarize(method, data.name, cfg_used, res, time.perf_counter() - t0)
    records.append(rec)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(records, indent=1, default=float))
    line = (f"{method:<14} {data.name:<9} L={rec['layers']:<3} P={rec['stages']} K={rec['chunks']} "
            f"test {100 * rec['test']:.1f} (last {100 * rec['test_last']:.1f}) epoch {rec['epoch_s']:.3f}s "
            f"bytes/epoch {rec['train_bytes']:,}")
    if "bubble" in rec:
        ideal = f" (ideal {rec['bubble_ideal']:.2f})" if "bubble_ideal" in rec else ""
        line += f" bubble {rec['bubble']:.2f}{ideal}"
    print(line, flush=True)
    return rec


def suite_accuracy(args, records, out) -> None:
    for ds_name in args.datasets:
        data = load_dataset(ds_name, root=args.data_root)
        for L in args.layers:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                base = dict(MODEL, layers=L, epochs=args.epochs, seed=seed, threads_per_rank=args.threads)
                run_one(records, out, "single", data, **base)
                for P in args.stages:
                    run_one(records, out, "pipe", data, trainer="pipe", stages=P, chunks=2 * P, **base)
                for P in ([] if args.no_gp else args.stages[:1]):
                    run_one(records, out, "graph-parallel", data, trainer="pipe", parallel="graph", stages=P, **base)


AIDS = {
    "none": {},
    "warmup10": dict(pipe_warmup=10),
    "smoothing0.95": dict(pipe_smoothing=0.95),
    "clip1.0": dict(grad_clip=1.0),
}


def suite_aids(args, records, out) -> None:
    for ds_name in args.datasets:
        data = load_dataset(ds_name, root=args.data_root)
        for L in args.layers:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                base = dict(MODEL, layers=L, epochs=args.epochs, seed=seed, threads_per_rank=args.threads)
                if not args.no_single:
                    run_one(records, out, "single", data, **base)
                    run_one(records, out, "single+clip1.0", data, **base, grad_clip=1.0)
                for P in args.stages:
                    for name, kw in AIDS.items():
                        if args.aids and name not in args.aids:
                            continue
                        run_one(records, out, f"pipe:{name}", data, trainer="pipe", stages=P, chunks=2 * P,
                                **{**base, **kw})


def suite_volume(args, records, out) -> None:
    data = load_dataset("powerlaw", num_nodes=args.nodes, avg_degree=args.degree, num_features=args.features)
    print(f"powerlaw: {data.num_nodes} nodes, {data.graph.num_edges} directed edges", flush=True)
    for L in args.layers:
        base = dict(MODEL, layers=L, hidden=args.hidden, epochs=args.epochs, eval_every=10 ** 6, dropout=0.0,
                    threads_per_rank=args.threads)
        if not args.no_single:  # one rank, one chunk, exact: single-process training, timed like the others
            run_one(records, out, "single", data, trainer="pipe", stages=1, chunks=1, **base)
        for P in args.stages:
            run_one(records, out, "pipe", data, trainer="pipe", stages=P, chunks=P * args.chunk_factor, **base)
            run_one(records, out, "graph-parallel", data, trainer="pipe", parallel="graph", stages=P, **base)


def suite_sf(args, records, out) -> None:
    for ds_name in args.datasets:
        data = load_dataset(ds_name, root=args.data_root)
        for L in args.layers:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                base = dict(MODEL, layers=L, epochs=args.epochs, seed=seed, threads_per_rank=args.threads)
                for P in args.stages:
                    run_one(records, out, "pipe", data, trainer="pipe", stages=P, chunks=2 * P, **base)
                    run_one(records, out, "pipe-sf", data, trainer="pipe", stages=P, chunks=2 * P, pipe_train="sf",
                            **{**base, "residual": False, "init": "default", "dropout": 0.0})


SUITES = {"accuracy": suite_accuracy, "aids": suite_aids, "volume": suite_volume, "sf": suite_sf}


def table(records: list[dict[str, Any]]) -> str:
    """Markdown table of the records."""
    head = "| method | dataset | L | P | K | seed | test (best val) | test (last) | s/epoch | bytes/epoch | " \
           "predicted | bubble (ideal) |"
    lines = [head, "|" + "---|" * 12]
    for r in records:
        bub = f"{r['bubble']:.2f}" + (f" ({r['bubble_ideal']:.2f})" if "bubble_ideal" in r else "") \
            if "bubble" in r else "–"
        pred = f"{r['predicted_bytes']:,}" if "predicted_bytes" in r else "–"
        lines.append(f"| {r['method']} | {r['dataset']} | {r['layers']} | {r['stages']} | {r['chunks'] or '–'} | "
                     f"{r['seed']} | {100 * r['test']:.1f} | {100 * r['test_last']:.1f} | {r['epoch_s']:.3f} | "
                     f"{r['train_bytes']:,} | {pred} | {bub} |")
    return "\n".join(lines)


def _mean(xs: list[float]) -> float:
    return statistics.fmean(xs) if xs else float("nan")


def volume_table(records: list[dict[str, Any]]) -> str:
    """Pipe vs graph-parallel per (layers, stages): bytes, ratio, check, time, bubble."""
    single = {r["layers"]: r for r in records if r["method"] == "single"}
    lines = ["| L | P | pipe bytes/epoch | graph-parallel bytes/epoch | GP / pipe | target | counted = analytic | "
             "pipe s/epoch | GP s/epoch | single s/epoch | pipe bubble (ideal) |", "|" + "---|" * 11]
    for r in records:
        if r["method"] != "pipe":
            continue
        g = next((x for x in records if x["method"] == "graph-parallel" and x["layers"] == r["layers"]
                  and x["stages"] == r["stages"]), None)
        if g is None:
            continue
        target = 4 if r["layers"] <= 8 else 8
        ratio = g["train_bytes"] / r["train_bytes"]
        one = single.get(r["layers"])
        lines.append(f"| {r['layers']} | {r['stages']} (K={r['chunks']}) | {r['train_bytes'] / 1e6:.1f} MB | "
                     f"{g['train_bytes'] / 1e6:.1f} MB | **{ratio:.1f}x** | >= {target}x "
                     f"{'met' if ratio >= target else 'MISSED'} | {r['bytes_match'] and g['bytes_match']} | "
                     f"{r['epoch_s']:.2f} | {g['epoch_s']:.2f} | {one['epoch_s']:.2f} | "
                     f"{r['bubble']:.2f} ({r['bubble_ideal']:.2f}) |" if one else "")
    return "\n".join(x for x in lines if x)


def accuracy_table(records: list[dict[str, Any]]) -> str:
    """Mean test accuracy (best-validation epoch) per dataset, depth and method, over seeds."""
    keys = sorted({(r["dataset"], r["layers"]) for r in records})
    methods = []
    for r in records:
        m = r["method"] + (f" P={r['stages']}" if r["stages"] > 1 else "")
        if m not in methods:
            methods.append(m)
    lines = ["| dataset | L | seeds | " + " | ".join(methods) + " |", "|" + "---|" * (3 + len(methods))]
    for ds, L in keys:
        rs = [r for r in records if r["dataset"] == ds and r["layers"] == L]
        cells = []
        base = _mean([r["test"] for r in rs if r["method"] == "single"])
        for m in methods:
            xs = [r["test"] for r in rs if r["method"] + (f" P={r['stages']}" if r["stages"] > 1 else "") == m]
            if not xs:
                cells.append("–")
                continue
            d = 100 * (_mean(xs) - base)
            cells.append(f"{100 * _mean(xs):.1f}" + ("" if m == "single" or base != base else f" ({d:+.1f})"))
        seeds = len({r["seed"] for r in rs})
        lines.append(f"| {ds} | {L} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def curve_table(records: list[dict[str, Any]], at: tuple[int, ...] = (10, 25, 50, 100, 150, 200)) -> str:
    """Validation accuracy at some epochs (the convergence curve), per run."""
    lines = ["| run | P | " + " | ".join(f"val@{e}" for e in at) + " | test (best val) | test (last) |",
             "|" + "---|" * (len(at) + 4)]
    for r in records:
        pts = {int(c[0]): c[1] for c in r["curve"]}
        cells = [f"{100 * pts[e]:.1f}" if e in pts else "–" for e in at]
        lines.append(f"| {r['method']} | {r['stages']} | " + " | ".join(cells) +
                     f" | {100 * r['test']:.1f} | {100 * r['test_last']:.1f} |")
    return "\n".join(lines)


def report(paths: list[str]) -> str:
    """Markdown tables of result files (by suite, recognized from their records)."""
    out = []
    for path in paths:
        records = json.loads(Path(path).read_text())
        out.append(f"### {Path(path).name}\n")
        if any(r["dataset"] == "powerlaw" for r in records):
            out.append(volume_table(records))
        elif any(r["method"].startswith("pipe:") for r in records):
            out.append(curve_table(records))
        else:
            out.append(accuracy_table(records))
        out.append("\n" + table(records) + "\n")
    return "\n".join(out)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The benchmark's options (shared with ``gnnsys bench gnnpipe``)."""
    ap.add_argument("--suite", choices=sorted(SUITES))
    ap.add_argument("--report", nargs="+", default=None, help="print the markdown tables of these result files")
    ap.add_argument("--datasets", default="cora,citeseer")
    ap.add_argument("--layers", default="8,16")
    ap.add_argument("--stages", default="2,4")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None, help="default: 200 (accuracy suites), 3 (volume)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    ap.add_argument("--nodes", type=int, default=200_000)
    ap.add_argument("--degree", type=float, default=24.0)
    ap.add_argument("--features", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--chunk-factor", type=int, default=2, help="volume suite: chunks = factor x stages")
    ap.add_argument("--no-single", action="store_true", help="volume and aids suites: skip the single-process runs")
    ap.add_argument("--no-gp", action="store_true", help="accuracy suite: skip the graph-parallel run")
    ap.add_argument("--aids", default=None, help=f"aids suite: comma-separated subset of {','.join(AIDS)}")
    ap.add_argument("--init", default=None, help="weight initialization (default: kaiming, the Virgo table's pick "
                    "for deep GCNs on Cora)")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--out", default=None)


def run(args: argparse.Namespace) -> int:
    """Run the chosen suite (or print ``--report`` tables) from parsed options."""
    if args.report:
        print(report(args.report))
        return 0
    if args.suite is None:
        from gnnsys.errors import ConfigError

        raise ConfigError("bench gnnpipe: --suite is required (or --report FILES)")
    args.datasets = [d for d in args.datasets.split(",") if d]
    args.layers, args.stages = _ints(args.layers, "--layers"), _ints(args.stages, "--stages")
    args.aids = args.aids.split(",") if args.aids else None
    if args.epochs is None:
        args.epochs = 3 if args.suite == "volume" else 200
    out = Path(args.out) if args.out else None
    if args.init:
        MODEL["init"] = args.init
    torch.set_num_threads(args.threads)  # single-process runs get what one rank gets (and no oversubscription)
    records: list[dict[str, Any]] = []
    SUITES[args.suite](args, records, out)
    print(table(records))
    return 0


def _ints(text: str, flag: str) -> list[int]:
    """Comma-separated positive integers (``"8,16"``); anything else is a ``ConfigError``."""
    from gnnsys.errors import ConfigError

    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise ConfigError(f"{flag} takes comma-separated integers such as 8,16, got {text!r}") from e
    if not vals or min(vals) < 1:
        raise ConfigError(f"{flag} takes integers >= 1, got {text!r}")
    return vals


def main(argv: list[str] | None = None) -> int:
    """``python -m gnnsys.experiments.gnnpipe``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(ap)
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
