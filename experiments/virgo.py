"""Virgo vs Xavier vs Kaiming: test scores, mean ± std over seeds (TU: over CV folds).

    python -m gnnsys.experiments.virgo [--quick] [--suites cora-gcn3,mutag-gin] [--out FILE.json]
    python -m gnnsys.experiments.virgo --merge seed0.json seed1.json --out FILE.json

Every run is ``gnnsys.api.train(TrainConfig(dataset=..., init=..., seed=..., quiet=True, ...))``
with the dataset's defaults except the suite's overrides. Prints a markdown table and writes
JSON (every run's result) to ``--out``. ``--quick`` uses fewer seeds and epochs (a smoke run,
not evidence). ``--epochs`` overrides every suite's epoch count.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gnnsys.experiments.suites import VIRGO_ROWS

from gnnsys.config import TrainConfig

INITS = ("virgo", "xavier", "kaiming")


@dataclass
class Suite:
    """One row of the table: a dataset, a model and its overrides."""

    name: str
    dataset: str
    overrides: dict[str, Any] = field(default_factory=dict)
    quick: dict[str, Any] = field(default_factory=dict)
    seeds: int = 5
    needs: str | None = None  # an optional module the suite needs

    @property
    def cv(self) -> bool:
        return self.dataset.upper() in ("MUTAG", "PROTEINS", "NCI1", "IMDB-BINARY", "ENZYMES")


#: The rows of the Virgo table, defined in ``gnnsys.experiments.suites`` (``gnnsys bench virgo``).
SUITES = [Suite(row, ds, dict(over), dict(quick), seeds=seeds,
                needs="gnnsys.samplers.saint" if "sampler" in over else None)
          for row, ds, over, quick, seeds in VIRGO_ROWS]


def available(suite: Suite) -> bool:
    """Whether the suite's optional module is importable."""
    return suite.needs is None or importlib.util.find_spec(suite.needs) is not None


def run_suite(suite: Suite, inits: list[str], quick: bool, data_root: str | None, epochs: int | None,
              seeds: int | None, first_seed: int = 0, device: str = "cpu") -> dict[str, Any]:
    """All runs of one suite: ``{init: {"scores": [...], "mean", "std", "runs": [...]}}``."""
    from gnnsys.api import train

    over = dict(suite.overrides)
    if quick:
        over.update(suite.quick)
    if epochs is not None:
        over["epochs"] = epochs
    n_seeds = seeds if seeds is not None else (min(2, suite.seeds) if quick else suite.seeds)
    res: dict[str, Any] = {"dataset": suite.dataset, "overrides": over, "seeds": n_seeds, "inits": {}}
    for init in inits:
        scores, runs = [], []
        for seed in range(first_seed, first_seed + n_seeds):
            t0 = time.perf_counter()
            r = train(TrainConfig(dataset=suite.dataset, init=init, seed=seed, quiet=True, data_root=data_root,
                                  device=device, **over))
            res["metric"] = r["metric"]
            per = [x["test"] for x in r["runs"]] if suite.cv else [r["test"]]
            scores += per
            runs.append({"seed": seed, "test": r["test"], "val": r["val"], "fold_tests": per,
                         "epochs": r["epochs"], "seconds": time.perf_counter() - t0})
            print(f"  {suite.name} {init} seed {seed}: test {r['test']:.4f} ({time.perf_counter() - t0:.0f}s)",
                  file=sys.stderr, flush=True)
        res["inits"][init] = {"scores": scores, "mean": statistics.fmean(scores),
                              "std": statistics.pstdev(scores) if len(scores) > 1 else 0.0, "runs": runs}
    return res


def markdown(results: dict[str, Any], inits: list[str]) -> str:
    """The table: one row per suite, ``mean ± std`` per init, best in bold."""
    head = "| suite | metric | runs | " + " | ".join(inits) + " |"
    lines = [head, "|" + "---|" * (3 + len(inits))]
    for name, r in results.items():
        means = {i: r["inits"][i]["mean"] for i in inits if i in r["inits"]}
        best = max(means, key=means.get) if means else None
        cells = []
        for i in inits:
            if i not in r["inits"]:
                cells.append("–")
                continue
            d = r["inits"][i]
            c = f"{100 * d['mean']:.2f} ± {100 * d['std']:.2f}"
            cells.append(f"**{c}**" if i == best else c)
        n = len(next(iter(r["inits"].values()))["scores"]) if r["inits"] else 0
        lines.append(f"| {name} | {r.get('metric', '?')} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def merge(files: list[str]) -> dict[str, Any]:
    """One result set from several ``--out`` files of the same suites run on different seeds
    (``--first-seed``): runs pooled per suite and init, mean and std recomputed; a seed that
    appears twice is an error."""
    merged: dict[str, Any] = {}
    for f in files:
        for name, r in json.loads(Path(f).read_text()).items():
            m = merged.setdefault(name, {k: v for k, v in r.items() if k != "inits"} | {"inits": {}})
            if m.get("overrides") != r.get("overrides"):
                raise ValueError(f"{f}: suite {name} ran with {r.get('overrides')}, not {m.get('overrides')}")
            for init, d in r["inits"].items():
                runs = m["inits"].setdefault(init, {"runs": []})["runs"]
                seen = {x["seed"] for x in runs}
                dup = seen & {x["seed"] for x in d["runs"]}
                if dup:
                    raise ValueError(f"{f}: suite {name} init {init} repeats seeds {sorted(dup)}")
                runs += d["runs"]
    for m in merged.values():
        for d in m["inits"].values():
            d["runs"].sort(key=lambda x: x["seed"])
            d["scores"] = [t for x in d["runs"] for t in x["fold_tests"]]
            d["mean"] = statistics.fmean(d["scores"])
            d["std"] = statistics.pstdev(d["scores"]) if len(d["scores"]) > 1 else 0.0
        m["seeds"] = len(next(iter(m["inits"].values()))["runs"]) if m["inits"] else 0
    return merged


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer seeds and epochs (a smoke run)")
    p.add_argument("--suites", default=None, help="comma-separated suite names (default: all available)")
    p.add_argument("--inits", default=",".join(INITS))
    p.add_argument("--seeds", type=int, default=None, help="override every suite's seed count")
    p.add_argument("--first-seed", type=int, default=0, help="seeds run from here (to extend a table)")
    p.add_argument("--epochs", type=int, default=None, help="override every suite's epoch count")
    p.add_argument("--data-root", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="virgo_results.json")
    p.add_argument("--merge", nargs="+", default=None, metavar="FILE",
                   help="pool --out files of runs on different seeds into --out and print the table")
    args = p.parse_args(argv)
    if args.merge:
        results = merge(args.merge)
        Path(args.out).write_text(json.dumps(results, indent=2))
        present = {i for r in results.values() for i in r["inits"]}
        print(markdown(results, [i for i in INITS if i in present] + sorted(present - set(INITS))))
        return 0
    names = args.suites.split(",") if args.suites else [s.name for s in SUITES]
    known = {s.name: s for s in SUITES}
    unknown = [n for n in names if n not in known]
    if unknown:
        p.error(f"unknown suites {unknown}; known: {sorted(known)}")
    inits = [i.strip() for i in args.inits.split(",") if i.strip()]
    results: dict[str, Any] = {}
    for name in names:
        suite = known[name]
        if not available(suite):
            print(f"skipping {name}: {suite.needs} is not available", file=sys.stderr)
            continue
        results[name] = run_suite(suite, inits, args.quick, args.data_root, args.epochs, args.seeds,
                                  args.first_seed)
        Path(args.out).write_text(json.dumps(results, indent=2))
    print(markdown(results, inits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
