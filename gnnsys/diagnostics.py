"""``gnnsys diagnose-variance``: per-layer forward and backward variance at initialization.

For each scheme the model is built, initialized, and one training step's loss (the
trainer's own loss on its first mini-batch, dropout off, batch norm on batch statistics)
is backpropagated. ``H^0`` is the encoder's output, ``Z^l`` the output of layer ``l``
before its norm and activation, ``H^l`` what layer ``l`` hands on (after them; for the last
layer of a node classifier ``H^L = Z^L``, the logits).

- forward:  ``Var(H^0), Var(Z^1), ..., Var(Z^L)``
- backward: ``Var(dL/dH^0), ..., Var(dL/dH^L)``

These are the quantities a He-style variance analysis (Kaiming, Virgo) keeps constant from
layer to layer: the pre-activation variance forward (the ReLU halves the second moment and
removes the mean, so post-activation variances of hidden layers are not comparable with
the logits or the input) and the gradient at each layer's input backward. The
post-activation forward curve is kept in the JSON (``forward_post_activation``). Variances
are over all entries. The one-number summary of a curve is ``max_l |log(Var_l / Var_{l-1})|``
over ``l = 1..L`` (natural log): 0 means every layer keeps the variance. With
``repeats > 1`` each scheme is initialized from seeds ``seed, seed+1, ...``; the printed
variances are geometric means over repeats and the summaries the mean of the per-repeat
summaries.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gnnsys.config import INITS, TrainConfig
from gnnsys.dataset import Dataset
from gnnsys.errors import ConfigError
from gnnsys.models.stack import GNNStack


def max_log_ratio(curve: list[float]) -> float:
    """``max_l |log(curve[l] / curve[l-1])|``; ``inf`` if a variance is zero or not finite."""
    worst = 0.0
    for a, b in zip(curve[:-1], curve[1:]):
        if not (a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)):
            return math.inf
        worst = max(worst, abs(math.log(b / a)))
    return worst


def variance_profile(
    model: GNNStack, dataset: Dataset, cfg: TrainConfig
) -> tuple[list[float], list[float], list[float]]:
    """``(forward, backward, post)`` for one training step at init, each a list over
    ``l = 0..L``: ``Var(H^0), Var(Z^1..Z^L)``; ``Var(dL/dH^l)``; ``Var(H^l)`` after activation."""
    from gnnsys.api import node_split
    from gnnsys.trainers.backprop import BackpropTrainer

    model = copy.deepcopy(model)
    model.dropout = model.input_dropout = 0.0
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    model.train()  # batch norm on batch statistics, as in training
    trainer = BackpropTrainer(cfg)
    split = node_split(dataset, cfg) if dataset.task == "node" else dataset.split
    if dataset.task == "graph" and "train" not in split:
        split = {"train": torch.arange(dataset.num_graphs)}
    batch = next(iter(trainer.pipeline(model, dataset, trainer.default_loader(dataset, split))))
    states: list[torch.Tensor] = []  # H^0 .. H^L
    pre: list[torch.Tensor] = []  # Z^1 .. Z^L
    encode, forward_layer = model.encode, model.forward_layer

    def rec(h: torch.Tensor) -> torch.Tensor:
        if not h.requires_grad:  # raw input features: make them a leaf that gets a gradient
            h = h.detach().requires_grad_()
        h.retain_grad()
        states.append(h)
        return h

    hooks = [lay.register_forward_hook(lambda _m, _i, out: pre.append(out.detach())) for lay in model.layers]
    model.encode = lambda b: rec(encode(b))  # type: ignore[method-assign]
    model.forward_layer = lambda i, h, b: rec(forward_layer(i, h, b))  # type: ignore[method-assign]
    loss = trainer.train_step(model, batch, dataset)
    loss.backward()
    for hk in hooks:
        hk.remove()

    def var(t: torch.Tensor | None) -> float:
        return 0.0 if t is None else float(t.detach().double().var(unbiased=False))

    fwd = [var(states[0])] + [var(z) for z in pre]
    bwd = [var(h.grad) for h in states]
    post = [var(h) for h in states]
    return fwd, bwd, post


def diagnose(
    dataset: Dataset,
    schemes: list[str],
    layer: str = "gcn",
    layers: int = 8,
    hidden: int = 64,
    seed: int = 0,
    repeats: int = 1,
) -> dict[str, Any]:
    """Variance curves and summaries per scheme (see the module docstring)."""
    from gnnsys.api import initialize, model_for, seed_everything

    check_options(schemes, layer, layers, hidden, repeats)
    out: dict[str, Any] = {"dataset": dataset.name, "layer": layer, "layers": layers, "hidden": hidden,
                           "seed": seed, "repeats": repeats, "schemes": {}}
    for scheme in schemes:
        fwds, bwds, posts = [], [], []
        for r in range(repeats):
            cfg = TrainConfig(dataset=dataset.name, layer=layer, layers=layers, hidden=hidden, init=scheme,
                              seed=seed + r, quiet=True).resolved(dataset.name, dataset.task)
            seed_everything(cfg.seed)
            model = model_for(dataset, cfg)
            initialize(model, dataset, cfg)
            f, b, post = variance_profile(model, dataset, cfg)
            fwds.append(f)
            bwds.append(b)
            posts.append(post)
        out["schemes"][scheme] = {
            "forward": _geomean(fwds),
            "backward": _geomean(bwds),
            "forward_summary": statistics.fmean(max_log_ratio(f) for f in fwds),
            "backward_summary": statistics.fmean(max_log_ratio(b) for b in bwds),
            "forward_summaries": [max_log_ratio(f) for f in fwds],
            "backward_summaries": [max_log_ratio(b) for b in bwds],
            "forward_post_activation": _geomean(posts),
            "forward_post_activation_summary": statistics.fmean(max_log_ratio(p) for p in posts),
        }
    return out


def _geomean(curves: list[list[float]]) -> list[float]:
    return [math.exp(statistics.fmean(math.log(v) if v > 0 else -math.inf for v in col)) for col in zip(*curves)]


def format_report(res: dict[str, Any]) -> str:
    """The table ``gnnsys diagnose-variance`` prints."""
    schemes = list(res["schemes"])
    lines = [f"{res['dataset']}: {res['layer']} x{res['layers']}, hidden {res['hidden']}, "
             f"seed {res['seed']}, repeats {res['repeats']}",
             "fwd: Var(H^0) (input), then Var(Z^l) (layer l output before norm/activation); bwd: Var(dL/dH^l)", ""]
    head = f"{'l':>3}" + "".join(f"  {s + ' fwd':>18}  {s + ' bwd':>18}" for s in schemes)
    lines += [head, "-" * len(head)]
    n = len(next(iter(res["schemes"].values()))["forward"])
    for i in range(n):
        row = f"{i:>3}"
        for s in schemes:
            d = res["schemes"][s]
            row += f"  {d['forward'][i]:>18.4e}  {d['backward'][i]:>18.4e}"
        lines.append(row)
    lines += ["", "max_l |log(Var_l / Var_{l-1})| (lower is better):"]
    for s in schemes:
        d = res["schemes"][s]
        lines.append(f"  {s:<16} forward {d['forward_summary']:8.3f}   backward {d['backward_summary']:8.3f}")
    return "\n".join(lines)


def plot(res: dict[str, Any], path: str | Path) -> None:
    """Forward and backward variance curves per scheme (log scale) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for s, d in res["schemes"].items():
        xs = list(range(len(d["forward"])))
        axes[0].plot(xs, d["forward"], marker="o", label=f"{s} ({d['forward_summary']:.2f})")
        axes[1].plot(xs, d["backward"], marker="o", label=f"{s} ({d['backward_summary']:.2f})")
    for ax, title in zip(axes, ("forward: Var(H^0), Var(Z^l) (pre-activation)", "backward: Var(dL/dH^l)")):
        ax.set_yscale("log")
        ax.set_xlabel("layer l")
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.suptitle(f"{res['dataset']}: {res['layer']} x{res['layers']}, hidden {res['hidden']} "
                 "(legend: max |log ratio|)")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def check_options(schemes: list[str], layer: str, layers: int, hidden: int, repeats: int) -> None:
    """``ConfigError`` for an unknown scheme or layer, or sizes below one (checked before the
    dataset is loaded, so a bad value is reported at once)."""
    from gnnsys.models.registry import get_layer

    if not schemes:
        raise ConfigError(f"--init names no scheme; pass one or more of {INITS}, comma-separated")
    bad = [s for s in schemes if s not in INITS]
    if bad:
        raise ConfigError(f"unknown init scheme(s) {bad}; choose from {INITS}")
    if repeats < 1:
        raise ConfigError(f"--repeats must be >= 1, got {repeats}")
    if layers < 1:
        raise ConfigError(f"--layers must be >= 1, got {layers}")
    if hidden < 1:
        raise ConfigError(f"hidden and out_dim must be positive (got --hidden {hidden})")
    get_layer(layer)


def main(args: argparse.Namespace) -> int:
    """Entry point of ``gnnsys diagnose-variance``."""
    from gnnsys.datasets import load_dataset

    schemes = [s.strip() for s in args.init.split(",") if s.strip()]
    check_options(schemes, args.layer, args.layers, args.hidden, args.repeats)  # before any data is read
    dataset = load_dataset(args.dataset, root=args.data_root)
    res = diagnose(dataset, schemes, args.layer, args.layers, args.hidden, args.seed, args.repeats)
    print(format_report(res), flush=True)
    if args.plot:
        plot(res, args.plot)
        print(f"plot written to {args.plot}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=2))
    return 0
