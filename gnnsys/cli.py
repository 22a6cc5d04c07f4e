"""``gnnsys`` command line: a thin layer over ``gnnsys.api`` (everything here is callable
from Python)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields

from gnnsys.config import (
    CACHE_POLICIES,
    DISK_LAYOUTS,
    DIST_BACKENDS,
    EVAL_MODES,
    FEATURE_KINDS,
    INITS,
    PARALLEL_SCHEMES,
    PIPE_TRAIN_MODES,
    SAINT_UNSEEN_EDGES,
    SAMPLERS,
    TRAINERS,
    VN_EDGE_DIRECTIONS,
    TrainConfig,
)
from gnnsys.errors import ConfigError, GnnsysError


# ---- one-line errors (issue 17, item 8): argparse's own errors in the ``gnnsys: error:`` form
class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors (bad choice, bad number, missing value) are one
    ``gnnsys: error: ...`` line and exit status 2, like every other gnnsys error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"gnnsys: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)
# ---- end one-line errors


# ---- layer arguments (issue 17, item 4)
def parse_layer_args(items: list[str] | None) -> dict[str, object]:
    """``["K=3", "aggr=max"]`` -> ``{"K": 3, "aggr": "max"}``: values are Python literals
    (``3``, ``0.5``, ``True``, ``None``, ``'max'``, ``(1, 2)``); a bare word that is no literal
    (``max``, ``sym``) is taken as that string."""
    import ast
    import re

    out: dict[str, object] = {}
    for item in items or []:
        name, eq, text = item.partition("=")
        name = name.strip()
        if not eq or not name.isidentifier():
            raise ConfigError(f"--layer-arg expects NAME=VALUE (e.g. --layer-arg K=3), got {item!r}")
        try:
            value: object = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError) as e:
            if not re.fullmatch(r"[A-Za-z_][\w.\-]*", text.strip()):
                raise ConfigError(f"--layer-arg {item}: {text!r} is not a Python literal (numbers, True/False/None, "
                                  f"'quoted strings', tuples, lists, dicts)") from e
            value = text.strip()
        out[name] = value
    return out
# ---- end layer arguments


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (default: the embedded synthetic-sbm dataset)",
                       description="Train a GNN. Unset options take the dataset's defaults.")
    a = p.add_argument
    a("--dataset", default=None, help="dataset name (gnnsys datasets lists them); default synthetic-sbm")
    a("--data-root", default=None, help="data folder (default: $GNNSYS_DATA)")
    a("--config", default=None, help="JSON file of TrainConfig fields; command-line options win")
    a("--layer", default=None, help="gcn, sage, gat, gin, dgl-*, or path/to/file.py:MyConv")
    a("--layer-arg", dest="layer_arg", action="append", default=None, metavar="NAME=VALUE",
      help="keyword argument of the layer constructor (repeatable; Python literals, bare words are strings), "
           "e.g. --layer torch_geometric.nn:ChebConv --layer-arg K=3")
    a("--layers", type=int, default=None, help="number of GNN layers")
    a("--hidden", type=int, default=None, help="hidden width")
    a("--epochs", type=int, default=None)
    a("--lr", type=float, default=None)
    a("--weight-decay", type=float, default=None)
    a("--dropout", type=float, default=None)
    a("--seed", type=int, default=None)
    a("--device", default=None, help="cpu or cuda[:i]")
    a("--trainer", choices=TRAINERS, default=None)
    a("--init", choices=INITS, default=None, help="weight initialization (default: each layer's own)")
    a("--split", choices=("public", "random"), default=None,
      help="node tasks: the dataset's split or a random 64/16/20 split from --seed")
    a("--batch-size", type=int, default=None)
    a("--link-head", choices=("dot", "mlp"), default=None, help="link tasks: pair scorer")
    a("--num-neg", type=int, default=None, help="link tasks: negatives per positive pair")
    a("--folds", type=int, default=None, help="TU datasets: k of stratified k-fold CV")
    a("--patience", type=int, default=None)
    a("--eval-every", type=int, default=None, help="evaluate every this many epochs (default 1)")
    a("--grad-clip", type=float, default=None, help="clip encoder/layers/head gradient norms to this")
    a("--select-by", choices=("metric", "loss"), default=None,
      help="model selection on the validation metric (default) or the validation loss")
    a("--sampler", choices=SAMPLERS, default=None)
    a("--saint-budget", type=int, default=None, help="node sampler: nodes; edge sampler: edges; MRW: steps")
    a("--saint-roots", type=int, default=None, help="random-walk roots")
    a("--saint-walk-length", type=int, default=None)
    a("--saint-frontier", type=int, default=None, help="MRW frontier size")
    a("--saint-coverage", type=float, default=None)
    a("--saint-graph", choices=("train", "full"), default=None)
    a("--saint-norm-cache", default=None, help="file to save/load GraphSAINT normalization statistics")
    a("--saint-unseen-edges", choices=SAINT_UNSEEN_EDGES, default=None,
      help="weight of an edge never seen in pre-sampling: once (counted once, weight C_v; the default) or "
           "clip (the paper-exact option: the original GraphSAINT's clipped weight 1e4)")
    a("--num-workers", type=int, default=None, help="DataLoader worker processes for subgraph sampling")
    a("--features", choices=FEATURE_KINDS, default=None,
      help="where node features are read from: memory (default), tiered (a cache tier in front of the host tier) "
           "or disk (a feature file, under --memory-budget)")
    a("--cache-fraction", type=float, default=None, help="tiered: share of the rows the cache tier holds (default 0.1)")
    a("--cache-policy", choices=CACHE_POLICIES, default=None,
      help="tiered: what the cache keeps (default planned: Belady inside a window of batches sampled ahead)")
    a("--cache-device", default=None, help="tiered: cpu or cuda[:i] (default: the compute device)")
    a("--cache-window", type=int, default=None, help="tiered, planned policy: batches seen ahead")
    # --- out-of-core features (--features disk)
    a("--feature-file", default=None, help="disk: the .npy feature file, one row per node (may be read-only; "
      "write one from your own matrix with gnnsys.storage.write_feature_file)")
    a("--memory-budget", default=None, help="disk: feature memory (cache tier + read buffers), e.g. 2GB")
    a("--disk-layout", choices=DISK_LAYOUTS, default=None,
      help="disk: packed (DiskGNN: each batch's cold rows in one packed file per epoch; default) or rows")
    a("--cache-dir", default=None, help="disk: folder for packed files (default $GNNSYS_CACHE)")
    a("--eval", dest="eval_mode", choices=EVAL_MODES, default=None,
      help="evaluation: layerwise (in chunks, layer by layer; default with --features disk) or full")
    # --- end out-of-core features
    a("--prefetch", type=int, default=None,
      help="batches the loading pipeline prepares ahead in a worker thread (0: off; default: on for "
           "features off the compute device, and for GraphSAINT sampling when the worker has a core "
           "torch's threads leave free or the model runs on a GPU)")
    a("--forward-variant", default=None,
      help="ForwardGNN variant: ff-la, ff-vn, sf, sf-top2input, sf-top2loss (node); "
           "forward-ce, forward-ff, top-down (link)")
    a("--forward-tau", type=float, default=None, help="ForwardGNN SF temperature (default 1.0)")
    a("--forward-vn-edges", choices=VN_EDGE_DIRECTIONS, default=None,
      help="class virtual-node links: both ways (the paper's) or member -> virtual node only; "
           "default: to-vn for sf, both for the other variants")
    a("--residual", action="store_true", default=None, help="layers that keep the width add their input (deep stacks)")
    g = p.add_argument_group("GNNPipe (--trainer pipe)")
    g.add_argument("--stages", type=int, default=None,
                   help="ranks: pipeline stages (--parallel layer) or partitions (graph); default WORLD_SIZE or 1")
    g.add_argument("--chunks", type=int, default=None,
                   help="graph chunks (micro-batches), >= stages; default 2 x stages")
    g.add_argument("--parallel", choices=PARALLEL_SCHEMES, default=None,
                   help="layer: GNNPipe (default); graph: graph-parallel baseline (halo exchange every layer)")
    g.add_argument("--no-staleness", dest="pipe_stale", action="store_false", default=None,
                   help="exact mode: no historical embeddings (equals single-process training; no overlap)")
    g.add_argument("--pipe-warmup", type=int, default=None, help="first epochs run exact (default 0)")
    g.add_argument("--pipe-smoothing", type=float, default=None,
                   help="PipeGCN-style smoothing gamma of the historical embeddings (0 = off; PipeGCN: 0.95)")
    g.add_argument("--pipe-train", choices=PIPE_TRAIN_MODES, default=None,
                   help="backprop (default) or sf: ForwardGNN SF local losses, no gradient crosses a stage")
    g.add_argument("--backend", choices=DIST_BACKENDS, default=None, help="torch.distributed backend (default auto)")
    g.add_argument("--dist-timeout", type=float, default=None,
                   help="seconds to wait for a peer before failing with its rank named (default 60)")
    g.add_argument("--threads-per-rank", type=int, default=None, help="torch threads per rank")
    _add_run_options(p)
    a("--out", default=None, help="write results JSON here")
    a("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)


# ---- checkpoints, resume, saved models (issue 17 items 1-2): train options and evaluate/predict
def _add_run_options(p: argparse.ArgumentParser) -> None:
    """``train``'s checkpoint and saved-model options."""
    g = p.add_argument_group("checkpoints and saved models")
    g.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                   help="write checkpoints here (every --checkpoint-every epochs and at the end)")
    g.add_argument("--checkpoint-every", type=int, default=None, metavar="N", help="epochs between checkpoints (1)")
    g.add_argument("--resume", nargs="?", const="latest", default=None, choices=("latest", "auto"),
                   help="continue from the newest checkpoint in --checkpoint-dir (it must exist); "
                        "--resume auto: continue if there is one, else start fresh")
    g.add_argument("--save-model", default=None, metavar="PATH",
                   help="write the trained model (and what rebuilds it) here, for gnnsys evaluate / predict")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from gnnsys.api import evaluate

    res = evaluate(args.model, dataset=args.dataset, out=args.out, data_root=args.data_root, device=args.device)
    folds = f" (mean of {len(res['runs'])} folds)" if len(res["runs"]) > 1 else ""
    print(f"{res['dataset']} ({res['task']}): {res['metric']} val {res['val']:.4f} test {res['test']:.4f}{folds}",
          flush=True)
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from gnnsys.api import predict

    cols = predict(args.model, dataset=args.dataset, out=args.out, pairs=args.pairs, fold=args.fold,
                   data_root=args.data_root, device=args.device)
    rows = len(next(iter(cols.values())))
    print(f"wrote {rows} predictions ({', '.join(cols)}) to {args.out}", flush=True)
    return 0


def _add_model_commands(sub: argparse._SubParsersAction) -> None:
    """``gnnsys evaluate`` and ``gnnsys predict`` (saved models from ``train --save-model``)."""
    e = sub.add_parser("evaluate", help="validation and test scores of a saved model (train --save-model)")
    pr = sub.add_parser("predict", help="predictions of a saved model, as .csv or .npy")
    for q in (e, pr):
        q.add_argument("--model", required=True, metavar="PATH", help="a file written by train --save-model")
        q.add_argument("--dataset", default=None, help="dataset name (default: the one the model was trained on)")
        q.add_argument("--data-root", default=None, help="data folder (default: $GNNSYS_DATA)")
        q.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    e.add_argument("--out", default=None, metavar="FILE.json", help="write the scores (val, test, per fold) as JSON")
    e.set_defaults(func=_cmd_evaluate)
    pr.add_argument("--out", required=True, metavar="FILE",
                    help="FILE.csv or FILE.npy: node classes and probabilities, link scores, graph predictions")
    pr.add_argument("--pairs", default=None, metavar="FILE",
                    help="link models: node pairs to score (.csv or .npy, two columns of node ids)")
    pr.add_argument("--fold", type=int, default=None,
                    help="cross-validated models: predict with this fold's model (default: average the folds)")
    pr.set_defaults(func=_cmd_predict)
# ---- end of checkpoint / saved-model commands


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Build a ``TrainConfig`` from parsed ``train`` arguments (``--config`` file first)."""
    names = {f.name for f in fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in names and v is not None and k != "config"}
    if getattr(args, "layer_arg", None):
        given["layer_args"] = parse_layer_args(args.layer_arg)
    if not args.quiet:
        given.pop("quiet", None)
    if args.config:
        layer_args = given.pop("layer_args", None)
        cfg = TrainConfig.from_file(args.config, **given)
        if layer_args:  # --layer-arg adds to (and wins over) the file's layer_args
            from dataclasses import replace

            cfg = replace(cfg, layer_args={**cfg.layer_args, **layer_args})
        return cfg
    return TrainConfig(**given)


def is_primary() -> bool:
    """Rank 0 of a torchrun launch, or a plain process."""
    import os

    return int(os.environ.get("RANK", "0") or 0) == 0


def _cmd_train(args: argparse.Namespace) -> int:
    from gnnsys.api import summary_line, train

    result = train(config_from_args(args))
    if is_primary():  # under torchrun, one summary
        print(summary_line(result), flush=True)
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from gnnsys.datasets import available_datasets

    names = available_datasets()
    if args.json:
        print(json.dumps(names, indent=2))
    else:
        width = max(map(len, names))
        for name, desc in names.items():
            print(f"{name:<{width}}  {desc}")
    return 0


def _cmd_layers(args: argparse.Namespace) -> int:
    from gnnsys.models import available_layers

    print("\n".join(available_layers()))
    return 0


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from gnnsys.diagnostics import main as diagnose_main

    return diagnose_main(args)


def _add_diagnose(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diagnose-variance", help="per-layer forward/backward variance at initialization")
    a = p.add_argument
    a("--dataset", default="cora")
    a("--data-root", default=None)
    a("--layer", default="gcn")
    a("--layers", type=int, default=8)
    a("--hidden", type=int, default=64)
    a("--init", default="xavier,kaiming,virgo", help="comma-separated schemes")
    a("--seed", type=int, default=0)
    a("--repeats", type=int, default=1, help="average over this many initializations")
    a("--plot", default=None, help="write a PNG of both curves per scheme")
    a("--out", default=None, help="write JSON")
    p.set_defaults(func=_cmd_diagnose)


def _add_bench(sub: argparse._SubParsersAction, load: bool = True) -> None:
    """``gnnsys bench SUITE``: the suites of ``gnnsys.experiments.bench`` (training suites and
    benchmark modules; adding one is a line there). ``load=False`` leaves the benchmark modules
    unimported (their options are only needed by ``gnnsys bench``)."""
    from gnnsys.experiments import bench

    p = sub.add_parser("bench", help="benchmark suites: " + ", ".join(bench.names()),
                       description=bench.__doc__.split("\n\n")[0])
    if load:
        bench.add_subcommands(p.add_subparsers(dest="suite", required=True, metavar="SUITE"))


def build_parser(bench_modules: bool = True) -> argparse.ArgumentParser:
    """The ``gnnsys`` parser (``bench_modules=False``: without the benchmark modules' options)."""
    parser = _Parser(prog="gnnsys", description="gnnsys: a GNN training engine")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    d = sub.add_parser("datasets", help="list dataset names")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=_cmd_datasets)
    la = sub.add_parser("layers", help="list registered layer names")
    la.set_defaults(func=_cmd_layers)
    _add_model_commands(sub)
    _add_diagnose(sub)
    _add_bench(sub, load=bench_modules)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``gnnsys`` console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(bench_modules=bool(argv) and argv[0] == "bench")
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
        # a module benchmark may hand its Python callers its results (bench_disk: a dict)
        return status if isinstance(status, int) and not isinstance(status, bool) else 0
    except GnnsysError as e:
        print(f"gnnsys: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gnnsys: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
