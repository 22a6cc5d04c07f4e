"""Backprop baselines on real data: the accuracy anchors of the foundation issue.

    python -m gnnsys.experiments.foundation [--quick] [--suites cora,citeseer,...] [--out results.json]

Prints a markdown table (mean ± std over seeds, or over the 10 CV folds for TU sets) next
to the published anchor and the target this project holds itself to.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from gnnsys.experiments.suites import find_case

from gnnsys.api import train
from gnnsys.config import TrainConfig

# name -> (TrainConfig overrides, anchor, target); the metric comes from the dataset. The
# configurations and anchors are the cases of ``gnnsys.experiments.suites`` (``gnnsys bench``);
# the targets are this project's own bar.
_FROM_SUITES = {"cora": ("node", "Cora/gcn", 0.80), "citeseer": ("node", "CiteSeer/gcn", 0.69),
                "mutag": ("graph", "MUTAG/gin", 0.85), "proteins": ("graph", "PROTEINS/gin", 0.73),
                "molbace": ("graph", "ogbg-molbace/gin", 0.70), "molbace-gine": ("graph", "ogbg-molbace/gine", 0.70),
                "ddi": ("link", "ogbl-ddi/sage", 0.40)}
SUITES: dict[str, tuple[dict[str, Any], float, float]] = {
    name: (dict(find_case(suite, key).config), getattr(find_case(suite, key).anchor, "value", 0.0), target)
    for name, (suite, key, target) in _FROM_SUITES.items()}
QUICK = {name: dict(find_case(suite, key).quick) for name, (suite, key, _t) in _FROM_SUITES.items()}


def run_suite(name: str, seeds: int, quick: bool, data_root: str | None) -> dict[str, Any]:
    """Train one suite over ``seeds`` seeds (TU suites: one 10-fold CV run per seed)."""
    overrides, anchor, target = SUITES[name]
    overrides = dict(overrides, **(QUICK[name] if quick else {}))
    scores, seconds, metric = [], 0.0, ""
    for seed in range(seeds):
        res = train(TrainConfig(seed=seed, quiet=True, data_root=data_root, **overrides))
        if res.get("folds"):
            scores += [r["test"] for r in res["runs"]]
        else:
            scores.append(res["test"])
        seconds += res["seconds"]
        metric = res["metric"]
    return {"suite": name, "dataset": overrides["dataset"], "layer": overrides["layer"], "metric": metric,
            "mean": statistics.fmean(scores), "std": statistics.pstdev(scores) if len(scores) > 1 else 0.0,
            "n": len(scores), "anchor": anchor, "target": target, "seconds": seconds}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suites", default=",".join(SUITES))
    p.add_argument("--seeds", type=int, default=None, help="default 5 (1 for TU CV, ddi and --quick)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    rows = []
    print("| suite | dataset | layer | metric | ours (mean ± std, n) | anchor | target | pass | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.suites.split(","):
        t0 = time.perf_counter()
        seeds = args.seeds or (1 if args.quick or name in ("mutag", "proteins", "ddi") else 5)
        r = run_suite(name, seeds, args.quick, args.data_root)
        r["seconds"] = time.perf_counter() - t0
        rows.append(r)
        print(f"| {name} | {r['dataset']} | {r['layer']} | {r['metric']} | {r['mean']:.4f} ± {r['std']:.4f} "
              f"(n={r['n']}) | {r['anchor'] or '-'} | {r['target']} | {'yes' if r['mean'] >= r['target'] else 'NO'} "
              f"| {r['seconds']:.0f} |", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
