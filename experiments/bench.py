"""``gnnsys bench SUITE``: one command for every benchmark.

Two kinds of suite share the command:

- training suites (``gnnsys.experiments.suites``: node, graph, link, saint, virgo, forwardgnn):
  every case trained over ``--seeds`` seeds with ``gnnsys.api.train``; a markdown table of
  mean ± std beside the published anchor, JSON of every run (``--out``), the validation curves
  (``--plot``);
- benchmark modules with their own options (cache, gnnpipe, ...): a module with
  ``add_arguments(parser)`` and ``main(args) -> int``, listed in ``MODULE_BENCHES``.

Adding a suite: a ``TrainSuite`` in ``suites.TRAIN_SUITES``, or one line in ``MODULE_BENCHES``
(``name: (module path, help)``).

    gnnsys bench node --seeds 5
    gnnsys bench saint --quick --cases 'Cora/*'
    gnnsys bench saint --set saint_unseen_edges=clip --out results/bench_saint_clip.json
    gnnsys bench virgo --cases 'cora-gcn8/*' --plot virgo_curves.png
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from gnnsys.experiments.suites import TRAIN_SUITES, Case, TrainSuite

from gnnsys.errors import ConfigError

#: Benchmarks with options of their own: name -> (module, its function ``f(args) -> int``, help);
#: the module's ``add_arguments(parser)`` adds the options.
MODULE_BENCHES: dict[str, tuple[str, str, str]] = {
    "cache": ("gnnsys.experiments.bench_cache", "main",
              "cache policies: hit rate vs capacity against Belady and the best static set"),
    "gnnpipe": ("gnnsys.experiments.gnnpipe", "run",
                "GNNPipe vs graph parallelism vs single process: volume, time, bubble, accuracy"),
    "disk": ("gnnsys.experiments.bench_disk", "main",
             "out-of-core training: memmap vs row layout vs packed layout vs in memory"),
}

#: Metrics shown in percent (the others, e.g. RMSE, as they are).
PERCENT = ("acc", "rocauc", "hits@20", "hits@50", "hits@100", "f1")


# ------------------------------------------------------------------------------ running
def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """``--set KEY=VALUE`` (``TrainConfig`` fields, Python literals, bare words as strings)."""
    from dataclasses import fields

    from gnnsys.cli import parse_layer_args
    from gnnsys.config import TrainConfig

    known = {f.name for f in fields(TrainConfig)}
    try:
        out = parse_layer_args(items)
    except ConfigError as e:
        raise ConfigError(str(e).replace("--layer-arg", "--set")) from e
    bad = sorted(set(out) - known)
    if bad:
        raise ConfigError(f"--set {bad[0]}=...: not a TrainConfig field; fields: {', '.join(sorted(known))}")
    return out


def select(suite: TrainSuite, patterns: str | None) -> list[Case]:
    """The cases whose ``row/column`` matches one of the comma-separated globs (all: ``None``)."""
    if not patterns:
        return list(suite.cases)
    pats = [p.strip() for p in patterns.split(",") if p.strip()]
    cases = [c for c in suite.cases if any(fnmatch.fnmatchcase(c.key, p) or c.key == p for p in pats)]
    if not cases:
        raise ConfigError(f"bench {suite.name}: --cases {patterns!r} matches none of "
                          f"{', '.join(c.key for c in suite.cases)}")
    return cases


def case_config(case: Case, args: argparse.Namespace) -> dict[str, Any]:
    """The case's ``TrainConfig`` fields under this run's options."""
    cfg = dict(case.config)
    if args.quick:
        cfg.update(case.quick)
    if args.epochs is not None:
        cfg["epochs"] = args.epochs
    cfg.update(args.sets)
    cfg.update(quiet=True, data_root=args.data_root, device=args.device)
    return cfg


def run_case(case: Case, args: argparse.Namespace) -> dict[str, Any]:
    """Train ``case`` over the seeds; scores pool the seeds (and a CV run's folds)."""
    from gnnsys.api import train
    from gnnsys.config import TrainConfig

    cfg = case_config(case, args)
    n = args.seeds if args.seeds is not None else (min(2, case.seeds) if args.quick else case.seeds)
    scores: list[float] = []
    runs: list[dict[str, Any]] = []
    metric = None
    t0 = time.perf_counter()
    for seed in range(args.first_seed, args.first_seed + n):
        r = train(TrainConfig(seed=seed, **cfg))
        metric = r["metric"]
        per = [x["test"] for x in r["runs"]] if r.get("folds") else [r["test"]]
        scores += per
        runs.append({"seed": seed, "val": r["val"], "test": r["test"], "fold_tests": per, "epochs": r["epochs"],
                     "seconds": r["seconds"], "curves": [_curve(x) for x in r["runs"]]})
        print(f"  {case.key} seed {seed}: {metric} test {r['test']:.4f} ({r['seconds']:.0f} s)",
              file=sys.stderr, flush=True)
    a = case.anchor
    return {"key": case.key, "row": case.row, "column": case.column, "metric": metric, "scores": scores,
            "mean": statistics.fmean(scores), "std": statistics.pstdev(scores) if len(scores) > 1 else 0.0,
            "n": len(scores), "seeds": n, "anchor": None if a is None else a.value,
            "anchor_std": None if a is None else a.std, "anchor_source": None if a is None else a.source,
            "seconds": time.perf_counter() - t0, "config": {k: v for k, v in cfg.items() if k != "data_root"},
            "runs": runs}


def _curve(run: dict[str, Any]) -> list[list[float]]:
    """``[epoch, validation score]`` of every evaluated epoch of one run."""
    return [[h["epoch"], h["valid"]] for h in run.get("history", []) if "valid" in h and "epoch" in h]


# ------------------------------------------------------------------------------ reporting
def _fmt(metric: str | None, v: float | None, std: float | None = None) -> str:
    if v is None:
        return "—"
    scale = 100.0 if metric in PERCENT else 1.0
    digits = 1 if scale == 100.0 else 3
    s = f"{scale * v:.{digits}f}"
    return s if std is None else f"{s} ± {scale * std:.{digits}f}"


def markdown(suite: TrainSuite, results: list[dict[str, Any]]) -> str:
    """One line per case (mean ± std beside the anchor), then, for suites with several columns,
    the row x column grid (the reference column's difference in brackets)."""
    lines = [f"**{suite.name}**: {suite.help}", "",
             "| case | metric | gnnsys (mean ± std) | n | anchor | anchor source | seconds |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['key']} | {r['metric']} | {_fmt(r['metric'], r['mean'], r['std'])} | {r['n']} | "
                     f"{_fmt(r['metric'], r['anchor'], r['anchor_std'])} | {r['anchor_source'] or '—'} | "
                     f"{r['seconds']:.0f} |")
    columns = list(dict.fromkeys(r["column"] for r in results))
    rows = list(dict.fromkeys(r["row"] for r in results))
    if len(columns) > 1:
        cell = {(r["row"], r["column"]): r for r in results}
        lines += ["", "| | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
        for row in rows:
            ref = cell.get((row, suite.reference)) if suite.reference else None
            cells = []
            for col in columns:
                r = cell.get((row, col))
                if r is None:
                    cells.append("")
                    continue
                c = _fmt(r["metric"], r["mean"], r["std"])
                if ref is not None and col != suite.reference:
                    scale = 100.0 if r["metric"] in PERCENT else 1.0
                    c += f" ({scale * (r['mean'] - ref['mean']):+.1f})"
                cells.append(c)
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Validation score vs epoch, mean over seeds (and folds), one panel per row."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ConfigError("--plot needs matplotlib: pip install 'gnnsys[plot]'") from e
    rows = list(dict.fromkeys(r["row"] for r in results))
    fig, axes = plt.subplots(1, len(rows), figsize=(5 * len(rows), 3.6), squeeze=False)
    for ax, row in zip(axes[0], rows):
        for r in (r for r in results if r["row"] == row):
            curves = [c for run in r["runs"] for c in run["curves"] if c]
            if not curves:
                continue
            by_epoch: dict[int, list[float]] = {}
            for c in curves:
                for e, v in c:
                    by_epoch.setdefault(int(e), []).append(v)
            xs = sorted(by_epoch)
            ax.plot(xs, [statistics.fmean(by_epoch[x]) for x in xs], label=r["column"])
        ax.set_title(row)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"validation {results[0]['metric']}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------ commands
def add_training_arguments(p: argparse.ArgumentParser) -> None:
    """The options every training suite takes."""
    a = p.add_argument
    a("--seeds", type=int, default=None, help="seeds per case (default: the case's, 5 for most; 2 with --quick)")
    a("--first-seed", type=int, default=0, help="seeds run from here")
    a("--quick", action="store_true", help="tiny settings (few epochs and seeds): a smoke run, not evidence")
    a("--cases", default=None, help="comma-separated ROW/COLUMN globs, e.g. 'Cora/*' or 'cora-gcn8/virgo'")
    a("--epochs", type=int, default=None, help="override every case's epochs")
    a("--set", dest="set_items", action="append", default=None, metavar="KEY=VALUE",
      help="override a TrainConfig field in every case (repeatable), e.g. --set saint_unseen_edges=clip")
    a("--device", default="cpu")
    a("--data-root", default=None)
    a("--out", default=None, help="JSON of every run (default results/bench_SUITE.json; _quick with --quick)")
    a("--plot", default=None, metavar="FILE.png", help="draw the validation curves here")
    a("--list", action="store_true", help="list the suite's cases and exit")


def run_training_suite(name: str, args: argparse.Namespace) -> int:
    """Run a training suite: table on stdout, JSON to ``--out``, curves to ``--plot``."""
    suite = TRAIN_SUITES[name]
    if args.seeds is not None and args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    if args.first_seed < 0:
        raise ConfigError(f"--first-seed must be >= 0, got {args.first_seed}")
    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {args.epochs}")
    from gnnsys.config import check_device

    check_device(args.device)
    args.sets = parse_sets(args.set_items)
    cases = select(suite, args.cases)
    if args.list:
        for c in cases:
            print(f"{c.key}: {c.config}")
        return 0
    out = Path(args.out or f"results/bench_{name}{'_quick' if args.quick else ''}.json")
    _check_writable(out, "--out")
    if args.plot:
        _check_writable(Path(args.plot), "--plot")
    results = []
    for case in cases:
        if case.needs and importlib.util.find_spec(case.needs) is None:
            print(f"skipping {case.key}: {case.needs} is not available", file=sys.stderr)
            continue
        results.append(run_case(case, args))
        out.write_text(json.dumps({"suite": name, "quick": args.quick, "cases": results}, indent=1, default=float))
    print(markdown(suite, results))
    if args.plot:
        plot(results, Path(args.plot))
    return 0


def _check_writable(path: Path, flag: str) -> None:
    """Create ``path``'s folder; a path that cannot be written is an error before any training."""
    import os

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{flag} {path}: cannot create its folder ({e.strerror})") from e
    if path.is_dir() or not os.access(path if path.exists() else path.parent, os.W_OK):
        raise ConfigError(f"{flag} {path}: cannot write there; name a file in a writable folder")


def names() -> list[str]:
    """Every suite name ``gnnsys bench`` takes."""
    return [*TRAIN_SUITES, *MODULE_BENCHES]


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    """``gnnsys bench NAME`` for every training suite and module benchmark."""
    for name, suite in TRAIN_SUITES.items():
        p = sub.add_parser(name, help=suite.help, description=f"{suite.help}. " + __doc__.split("\n\n")[0])
        add_training_arguments(p)
        p.set_defaults(func=lambda args, _n=name: run_training_suite(_n, args))
    for name, (module, func, help_) in MODULE_BENCHES.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_, description=(mod.__doc__ or help_).split("\n\n")[0])
        mod.add_arguments(p)
        p.set_defaults(func=getattr(mod, func))
