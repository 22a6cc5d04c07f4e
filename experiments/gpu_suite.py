"""The CUDA paths measured in one call: every GPU check of the project as one script that fits a
short device session (8 minutes with ``--device cuda``), dry-runnable on a CPU at reduced sizes.

Items (``--only`` takes their names, comma-separated, or a group: ``saint`` = profile,samplers;
``tiering`` = cache,loading,train_step):

- ``profile``: ``profile_saint_cuda`` for the node and edge samplers, briefly (5 groups each);
- ``samplers``: ``bench_samplers --device cuda --no-dgl`` on the CPU table's graph and budgets
  (1M nodes, ~20M edges; node 8000, edge 6000, walk 3000x2, MRW 8000), each rate divided by the
  committed CPU table's (``results/bench_samplers.json``): target 20x, the MRW 5x;
- ``train_step``: ``bench_train_step --device cuda --json`` (ours only: DGL has no CUDA build);
- ``cache``: ``bench_cache --device cuda`` with the cache tier on the GPU (500k nodes, 2 epochs,
  capacities 5/10/20%, static-saint / s3fifo / planned against Belady), and its GPU gather timings;
- ``loading``: ``bench_loading`` on CUDA if it takes ``--device`` (else skipped, and said so);
- ``ddi``: ogbl-ddi, OGB's GraphSAGE recipe (``gnnsys train --dataset ogbl-ddi``: 200 epochs,
  scored every 5, no early stop), seeds 0-2, and the same with ``--sampler saint-edge`` (budget
  2000, 2000 epochs, scored every 20: the recipe of ``docs/graphsaint.md``); the 6 runs are
  concurrent processes on the one GPU, CPU threads shared out among them; test Hits@20 mean ± std
  beside the leaderboard's GraphSAGE 0.5390 ± 0.0474 (target mean >= 0.50; saint-edge >= 0.9x
  full graph);
- ``tests``: ``pytest tests/test_cuda.py tests/test_tiered_cuda.py`` with ``GNNSYS_TEST_DEVICE=cuda``
  (no skips allowed on a GPU), then ``tests/test_tiered_store.py tests/test_loading.py -x`` with
  the GPU visible (only the two CUDA files read ``GNNSYS_TEST_DEVICE``; ``tests/conftest.py`` does
  not; ``test_tiered_store.py`` has a branch for a machine with CUDA);
- ``pipe``: GNNPipe over nccl, 2 ranks on 2 GPUs; with one GPU it is skipped (one GPU cannot host
  two nccl ranks).

The timing items (profile, samplers, train_step, cache, loading) run one after another, alone on
the device; then ddi, tests and pipe run together. Each item is a subprocess (``sys.executable``)
with its own timeout (its budget in seconds, within ``--total-budget``; ddi takes whatever of the
total is left); a failure or timeout is recorded and the suite goes on. The out dir stays flat:
``suite.log`` (every subprocess's output, each line prefixed by its step), ``summary.json`` (the
item results, with every sub-benchmark's JSON inside; rewritten after each item) and
``summary.md`` (the table printed at the end).

    # the device machine, one call (ogb is not installed there: carry its wheel in .whl/ and the
    # data folder in the repo, e.g. data/ogb/ogbl_ddi, data/planetoid)
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site; \\
    python3 -m pip install -q --no-deps --no-build-isolation -e . && \\
    PYTHONUNBUFFERED=1 python3 -m gnnsys.experiments.gpu_suite --device cuda --data-root data --out-dir $OUT

    # the CPU dry run at reduced sizes (minutes)
    python -m gnnsys.experiments.gpu_suite --device cpu --quick --out-dir /tmp/gpu_suite_dry

Exit status: 0 when no item failed or timed out (skips and missed targets do not count), else 1.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

REPO = Path(__file__).resolve().parents[1]
CPU_SAMPLER_TABLE = REPO / "results" / "bench_samplers.json"
CPU_TRAIN_STEP_TABLE = REPO / "results" / "bench_train_step.json"

ITEMS = ("profile", "samplers", "train_step", "cache", "loading", "ddi", "tests", "pipe")
GROUPS = {"saint": ("profile", "samplers"), "tiering": ("cache", "loading", "train_step"), "all": ITEMS}
#: seconds per item with --device cuda; ddi also takes what the others leave of the total
CUDA_BUDGETS = {"profile": 45, "samplers": 60, "train_step": 95, "cache": 75, "loading": 60, "ddi": 205,
                "tests": 150, "pipe": 90}
QUICK_BUDGETS = {"profile": 60, "samplers": 60, "train_step": 90, "cache": 60, "loading": 60, "ddi": 240,
                 "tests": 60, "pipe": 60}
TOTAL_BUDGET_CUDA = 480.0
TOTAL_BUDGET_CPU = 900.0
#: timing items run first, alone; the others afterwards, together
EXCLUSIVE = ("profile", "samplers", "train_step", "cache", "loading")

SAMPLER_TARGET_X = {"node": 20.0, "edge": 20.0, "walk": 20.0, "mrw": 5.0}
DDI_LEADERBOARD = (0.5390, 0.0474)  # OGB leaderboard, GraphSAGE on ogbl-ddi, test Hits@20
DDI_TARGET_MEAN = 0.50
DDI_SAINT_VS_FULL = 0.9
OPERATOR_OVERHEAD_MAX = 0.10  # bench_train_step's own target
LOADING_TIERED_MAX = 1.1  # bench_loading's targets
LOADING_HIDDEN_MIN = 0.5
CUDA_TESTS = ("tests/test_cuda.py", "tests/test_tiered_cuda.py")
GPU_VISIBLE_TESTS = ("tests/test_tiered_store.py", "tests/test_loading.py")
DDI_RECIPES = {  # variant -> (gnnsys train options, epochs, eval every)
    "full": ([], 200, 5),
    "saint-edge": (["--sampler", "saint-edge", "--saint-budget", "2000"], 2000, 20),
}
TAIL_LINES = 40


# ----------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class Probe:
    """What the machine offers (``probe()``; tests build their own)."""

    cuda_devices: int
    cpus: int
    has_ogb: bool
    loading_has_device: bool
    ddi_path: str | None  # the ogbl-ddi folder under the data root, if there is one


@dataclass
class Step:
    """One subprocess of an item."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    json_out: str | None = None  # the JSON file the command writes


@dataclass
class Item:
    name: str
    title: str
    budget_s: float
    steps: list[Step] = field(default_factory=list)
    concurrent: bool = False  # its steps run at once (else one after another)
    exclusive: bool = True  # a timing item: runs alone, before the others
    stretch: bool = False  # its timeout is what is left of the total budget, if more than its budget
    skip: str | None = None  # not run, and why
    fail: str | None = None  # cannot run here (a missing package or data), and why
    notes: list[str] = field(default_factory=list)


@dataclass
class Target:
    name: str
    value: float | None
    goal: str
    met: bool | None  # None: not evaluated (quick run, not comparable, no value)
    sized: bool = True  # holds at full size only (a --quick run does not evaluate it); False: a correctness check

    def text(self) -> str:
        v = "" if self.value is None else f" {self.value:.3g}"
        m = {True: "met", False: "MISSED", None: "n/a"}[self.met]
        return f"{self.name}{v} ({self.goal}: {m})"


@dataclass
class StepResult:
    name: str
    status: str  # ok, fail, timeout
    rc: int | None
    seconds: float
    tail: list[str]
    result: Any = None  # the parsed JSON the step wrote


@dataclass
class ItemResult:
    name: str
    title: str
    status: str  # ok, fail, timeout, skipped
    seconds: float
    budget_s: float
    reason: str | None = None
    headline: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)


def selected(only: str | None) -> list[str]:
    """The items ``--only`` names (all when it is empty), in the suite's order."""
    if not only:
        return list(ITEMS)
    want: set[str] = set()
    for name in (s.strip() for s in only.split(",")):
        if not name:
            continue
        if name in GROUPS:
            want.update(GROUPS[name])
        elif name in ITEMS:
            want.add(name)
        else:
            raise ValueError(f"--only: unknown item {name!r} (items: {', '.join(ITEMS)}; groups: "
                             f"{', '.join(GROUPS)})")
    return [i for i in ITEMS if i in want]


def _mod(name: str) -> list[str]:
    return [sys.executable, "-m", f"gnnsys.experiments.{name}"]


def _work(args: argparse.Namespace, name: str) -> str:
    return str(Path(args.work_dir) / name)


def plan(args: argparse.Namespace, probe: Probe) -> list[Item]:
    """The items to run with these options on this machine, in order (no side effects)."""
    cuda = args.device.startswith("cuda")
    dev = args.device
    no_cuda = "no CUDA" if cuda and probe.cuda_devices == 0 else None
    budgets = dict(QUICK_BUDGETS if args.quick else CUDA_BUDGETS)
    budgets.update(args.budget or {})
    items: list[Item] = []
    names = selected(args.only)

    def add(item: Item) -> None:
        if item.name in names:
            item.exclusive = item.name in EXCLUSIVE
            items.append(item)

    # 1. GraphSAINT samplers
    it = Item("profile", "profile_saint_cuda (node, edge)", budgets["profile"])
    if not cuda:
        it.skip = "no CUDA (profile_saint_cuda needs a GPU)"
    else:
        it.skip = no_cuda
        it.steps = [Step(f"profile-{s}", _mod("profile_saint_cuda") + ["--sampler", s, "--groups", "5"])
                    for s in ("node", "edge")]
    add(it)
    it = Item("samplers", f"bench_samplers --device {dev} vs the CPU table", budgets["samplers"])
    out = _work(args, "bench_samplers.json")
    argv = _mod("bench_samplers") + ["--device", dev, "--no-dgl", "--json", out]
    argv += ["--quick"] if args.quick else ["--seconds", "3"]
    it.steps = [Step("bench_samplers", argv, json_out=out)]
    it.skip = no_cuda
    add(it)

    # 4. tiering on the GPU
    it = Item("train_step", f"bench_train_step --device {dev} (ours only)", budgets["train_step"])
    out = _work(args, "bench_train_step.json")
    argv = _mod("bench_train_step") + ["--device", dev, "--no-dgl", "--json", out] + (["--quick"] if args.quick else [])
    it.steps, it.skip = [Step("bench_train_step", argv, json_out=out)], no_cuda
    add(it)
    it = Item("cache", f"bench_cache --device {dev} (cache tier on the device)", budgets["cache"])
    out = _work(args, "bench_cache.json")
    argv = _mod("bench_cache") + ["--device", dev, "--capacities", "0.05,0.1,0.2", "--policies",
                                  "static-saint,s3fifo", "--extra-windows", "", "--out", out]
    argv += ["--quick"] if args.quick else ["--num-nodes", "500000", "--epochs", "2"]
    it.steps, it.skip = [Step("bench_cache", argv, json_out=out)], no_cuda
    add(it)
    it = Item("loading", f"bench_loading on {dev}", budgets["loading"])
    out = _work(args, "bench_loading.json")
    argv = _mod("bench_loading") + ["--json", out] + (["--quick"] if args.quick else [])
    if cuda and not probe.loading_has_device:
        it.skip = "bench_loading has no --device option (a CPU-only benchmark; not changed here)"
    else:
        if probe.loading_has_device:
            argv += ["--device", dev]
        it.steps, it.skip = [Step("bench_loading", argv, json_out=out)], no_cuda
    add(it)

    # 3. ogbl-ddi at leaderboard level
    seeds = args.ddi_seeds if args.ddi_seeds is not None else (1 if args.quick else 3)
    it = Item("ddi", f"ogbl-ddi SAGE, full graph and saint-edge, {seeds} seed(s) each", budgets["ddi"],
              concurrent=True, stretch=True)
    runs = [(v, s) for v in DDI_RECIPES for s in range(seeds)]
    threads = max(1, (probe.cpus - 4) // max(len(runs), 1))
    if no_cuda:
        it.skip = no_cuda
    elif probe.ddi_path is None:
        why = f"ogbl-ddi not found under --data-root {args.data_root}" if args.data_root else \
            "no --data-root (or GNNSYS_DATA) given"
        if args.quick:
            it.skip = why
        else:
            it.fail = why
    elif not probe.has_ogb:
        it.fail = ("python package ogb missing (OGB's Hits@K evaluator; carry its wheel: pip download "
                   "--no-deps ogb==1.3.6)")
    for variant, seed in runs:
        extra, epochs, every = DDI_RECIPES[variant]
        if args.quick:
            epochs, every = 1, 1
        out = _work(args, f"ddi_{variant}_s{seed}.json")
        argv = [sys.executable, "-m", "gnnsys", "train", "--dataset", "ogbl-ddi", "--device", dev,
                "--seed", str(seed), "--epochs", str(epochs), "--eval-every", str(every),
                "--patience", str(epochs), "--quiet", "--out", out] + extra
        if args.data_root:
            argv += ["--data-root", str(args.data_root)]
        it.steps.append(Step(f"ddi-{variant}-s{seed}", argv, json_out=out,
                             env={"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}))
    it.notes.append(f"{len(runs)} concurrent runs, {threads} CPU thread(s) each; no early stop (patience = epochs)")
    if args.quick:
        it.notes.append("quick: 1 epoch per run (a smoke run, not a score)")
    add(it)

    # 2. tests
    it = Item("tests", "pytest: CUDA test files, then the GPU-visible subset", budgets["tests"])
    common = ["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]
    if cuda:
        env = {"GNNSYS_TEST_DEVICE": dev, "OMP_NUM_THREADS": "2"}
        it.steps = [Step("pytest-cuda", [sys.executable] + common + list(CUDA_TESTS), env=env),
                    Step("pytest-gpu-visible", [sys.executable] + common + ["-x"] + list(GPU_VISIBLE_TESTS), env=env)]
        it.skip = no_cuda
    else:  # the tests need a GPU: check that they collect (the files, their imports) under the CPU device
        env = {"GNNSYS_TEST_DEVICE": "cpu"}
        it.steps = [Step("pytest-collect", [sys.executable] + common + ["--collect-only"] + list(CUDA_TESTS)
                         + list(GPU_VISIBLE_TESTS), env=env)]
        it.notes.append("no CUDA: the test files collected only (GNNSYS_TEST_DEVICE=cpu), not run")
    add(it)

    # 5. GNNPipe over nccl
    it = Item("pipe", "GNNPipe, nccl, 2 ranks", budgets["pipe"])
    if not cuda or probe.cuda_devices == 0:
        it.skip = "no CUDA (nccl needs GPUs)"
    elif probe.cuda_devices < 2:
        it.skip = f"{probe.cuda_devices} GPU: one GPU cannot host two nccl ranks (GNNPipe over nccl needs >= 2)"
    else:
        out = _work(args, "pipe_nccl.json")
        argv = [sys.executable, "-m", "gnnsys", "train", "--trainer", "pipe", "--stages", "2", "--backend", "nccl",
                "--device", dev, "--dataset", "cora", "--epochs", "5" if args.quick else "100", "--quiet",
                "--out", out] + (["--data-root", str(args.data_root)] if args.data_root else [])
        it.steps = [Step("pipe-nccl", argv, json_out=out)]
    add(it)
    return items


def _ddi_folder(root: str | None) -> str | None:
    if not root:
        return None
    for p in (Path(root) / "ogb" / "ogbl_ddi", Path(root) / "ogbl_ddi"):
        if (p / "raw").is_dir():
            return str(p)
    return None


def _option_in_source(module: str, option: str) -> bool:
    """Whether ``gnnsys.experiments.<module>``'s source declares ``option`` (read, not imported)."""
    path = REPO / "experiments" / f"{module}.py"
    try:
        text = path.read_text()
    except OSError:
        return False
    return f'"{option}"' in text or f"'{option}'" in text


def probe(args: argparse.Namespace) -> Probe:
    """The machine: GPUs (``torch.cuda.device_count()``), cores, the ogb package, the data."""
    import torch

    return Probe(cuda_devices=torch.cuda.device_count() if torch.cuda.is_available() else 0,
                 cpus=os.cpu_count() or 1, has_ogb=importlib.util.find_spec("ogb") is not None,
                 loading_has_device=_option_in_source("bench_loading", "--device"),
                 ddi_path=_ddi_folder(args.data_root))


# ----------------------------------------------------------------------------- running
class Log:
    """The combined log file, one line per output line, prefixed with its step (thread-safe)."""

    def __init__(self, path: Path, echo: TextIO | None = None) -> None:
        self.fh = path.open("a", encoding="utf-8", errors="replace")
        self.lock = threading.Lock()
        self.echo = echo

    def write(self, prefix: str, line: str) -> None:
        with self.lock:
            self.fh.write(f"[{time.strftime('%H:%M:%S')} {prefix}] {line.rstrip()}\n")
            self.fh.flush()

    def say(self, line: str) -> None:
        """To the console and the log."""
        self.write("suite", line)
        if self.echo is not None:
            with self.lock:
                print(line, file=self.echo, flush=True)

    def close(self) -> None:
        self.fh.close()


_LIVE: set[subprocess.Popen] = set()
_LIVE_LOCK = threading.Lock()


def _kill(p: subprocess.Popen) -> None:
    """End ``p``'s process group: SIGTERM, then SIGKILL after 5 s."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            p.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


class Proc:
    """One step's subprocess, its output streamed into the log (and its tail kept)."""

    def __init__(self, step: Step, log: Log, base_env: dict[str, str]) -> None:
        self.step = step
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        env = {**os.environ, **base_env, **step.env}
        log.write(step.name, "$ " + " ".join(_quote(a) for a in step.argv)
                  + "".join(f"  [{k}={v}]" for k, v in sorted(step.env.items())))
        self.t0 = time.perf_counter()
        self.p = subprocess.Popen(step.argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, text=True, errors="replace", bufsize=1,
                                  start_new_session=True)
        with _LIVE_LOCK:
            _LIVE.add(self.p)
        self.reader = threading.Thread(target=self._read, args=(log,), daemon=True)
        self.reader.start()

    def _read(self, log: Log) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            for part in line.rstrip("\n").split("\r"):  # progress bars
                if part.strip():
                    self.tail.append(part)
                    log.write(self.step.name, part)

    def wait(self, deadline: float) -> StepResult:
        status = "ok"
        try:
            rc: int | None = self.p.wait(max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            _kill(self.p)
            rc, status = None, "timeout"
        with _LIVE_LOCK:
            _LIVE.discard(self.p)
        self.reader.join(5.0)
        if status == "ok" and rc != 0:
            status = "fail"
        result = None
        if self.step.json_out and Path(self.step.json_out).is_file():
            try:
                result = json.loads(Path(self.step.json_out).read_text())
            except (OSError, ValueError) as e:
                self.tail.append(f"(unreadable JSON {self.step.json_out}: {e})")
        return StepResult(self.step.name, status, rc, time.perf_counter() - self.t0, list(self.tail), result)


def _quote(a: str) -> str:
    return a if a and re.fullmatch(r"[\w@%+=:,./-]+", a) else repr(a)


def kill_all() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for p in live:
        _kill(p)


def run_item(item: Item, deadline: float, log: Log, base_env: dict[str, str]) -> list[StepResult]:
    """Run ``item``'s steps within its timeout: ``min(budget, left)`` (``stretch``: all that is left)."""
    left = deadline - time.monotonic()
    timeout = left if item.stretch else min(item.budget_s, left)
    end = time.monotonic() + max(timeout, 0.0)
    if item.concurrent:
        procs = [Proc(s, log, base_env) for s in item.steps]
        return [p.wait(end) for p in procs]
    out = []
    for s in item.steps:
        if time.monotonic() >= end:
            out.append(StepResult(s.name, "timeout", None, 0.0, ["(not started: the item's time was spent)"]))
            continue
        out.append(Proc(s, log, base_env).wait(end))
    return out


# ----------------------------------------------------------------------------- evaluating
def _fmt(v: float | None, spec: str = ".3g") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def eval_samplers(res: dict[str, Any] | None, ref: dict[str, Any] | None
                  ) -> tuple[str, dict[str, Any], list[Target], list[str]]:
    """Per-sampler rates against the CPU table's (same graph and budgets), with the targets."""
    if not res:
        return "no results", {}, [], []
    notes: list[str] = []
    comparable = bool(ref) and ref.get("graph") == res.get("graph") and ref.get("budgets") == res.get("budgets")
    if not ref:
        notes.append("no CPU table to compare with")
    elif not comparable:
        notes.append("graph or budgets differ from the CPU table's: ratios not comparable (targets n/a)")
    figs: dict[str, Any] = {"rates": {}, "cpu_rates": {}, "ratio": {},
                            "presample_s": {k: v["seconds"] for k, v in res.get("presample_s", {}).items()}}
    targets, parts = [], []
    for key, x in SAMPLER_TARGET_X.items():
        o = res.get("ours", {}).get(key)
        if o is None:
            continue
        cpu = (ref or {}).get("ours", {}).get(key, {}).get("rate")
        ratio = o["rate"] / cpu if cpu else None
        figs["rates"][key], figs["cpu_rates"][key], figs["ratio"][key] = o["rate"], cpu, ratio
        targets.append(Target(f"{key} x CPU", ratio, f">= {x:g}x", None if not comparable or ratio is None
                              else ratio >= x))
        parts.append(f"{key} {o['rate']:.0f}/s = {_fmt(ratio, '.1f')}x")
    return ", ".join(parts), figs, targets, notes


def eval_profile(steps: list[StepResult]) -> tuple[str, dict[str, Any]]:
    figs: dict[str, Any] = {}
    for s in steps:
        for line in s.tail[::-1]:
            m = re.search(r"per subgraph \(us\): (.*) -> ([\d.]+) subgraphs/s", line)
            if m:
                figs[s.name.split("-", 1)[1]] = {"subgraphs_per_s": float(m.group(2)), "per_subgraph_us": m.group(1)}
                break
    return ", ".join(f"{k} {v['subgraphs_per_s']:.0f}/s" for k, v in figs.items()), figs


def eval_train_step(res: dict[str, Any] | None, ref: dict[str, Any] | None
                    ) -> tuple[str, dict[str, Any], list[Target], list[str]]:
    if not res:
        return "no results", {}, [], []
    comparable = bool(ref) and ref.get("graph") == res.get("graph") and ref.get("budgets") == res.get("budgets")
    figs: dict[str, Any] = {}
    targets, parts = [], []
    for key, r in res.get("runs", {}).items():
        o = r["ours"]
        rate = o["rates"].get(f"prefetch{min(int(o.get('default_prefetch', 0)), 1)}")
        cpu = None
        if comparable:
            c = ref["runs"].get(key, {}).get("ours")  # type: ignore[index]
            if c:
                cpu = c["rates"].get(f"prefetch{min(int(c.get('default_prefetch', 0)), 1)}")
        figs[key] = {"steps_per_s": rate, "cpu_table_steps_per_s": cpu, "x_cpu": rate / cpu if rate and cpu else None,
                     "operator_overhead": o.get("operator_overhead"), "stages_ms": o.get("stages_ms")}
        targets.append(Target(f"{key} operator overhead", o.get("operator_overhead"),
                              f"<= {OPERATOR_OVERHEAD_MAX:g}", None if o.get("operator_overhead") is None
                              else o["operator_overhead"] <= OPERATOR_OVERHEAD_MAX))
        parts.append(f"{key} {_fmt(rate, '.0f')}/s" + (f" ({rate / cpu:.1f}x CPU)" if rate and cpu else ""))
    return ", ".join(parts), figs, targets, []


def eval_cache(res: dict[str, Any] | None) -> tuple[str, dict[str, Any], list[Target], list[str]]:
    if not res:
        return "no results", {}, [], []
    figs: dict[str, Any] = {"hit_rate": {}, "planned_vs_belady": {}}
    for frac, row in res.get("capacities", {}).items():
        figs["hit_rate"][frac] = {k: v["hit_rate"] for k, v in row.items()}
        figs["planned_vs_belady"][frac] = res.get("targets", {}).get(frac, {}).get("planned_vs_belady")
    parts = ["planned/Belady " + "/".join(_fmt(v, ".3f") for v in figs["planned_vs_belady"].values())]
    targets = [Target("host bytes fall by the hit rate", None, "all capacities", all(
        t.get("host_bytes_reduced_by_hit_rate", False) for t in res.get("targets", {}).values()), sized=False)]
    gg = res.get("gpu_gathers")
    if gg:
        figs["gpu_gathers"] = gg
        keys = ("plain_GBps", "tiered_copy_GBps", "zero_copy_GBps", "all_on_gpu_GBps")
        parts.append("gather GB/s: " + ", ".join(f"{k[:-5]} {_fmt(gg.get(k), '.1f')}" for k in keys))
    return "; ".join(parts), figs, targets, []


def eval_loading(res: dict[str, Any] | None) -> tuple[str, dict[str, Any], list[Target], list[str]]:
    if not res:
        return "no results", {}, [], []
    runs = res.get("runs", {})
    base = runs.get("(a) memory", {}).get("seconds")
    figs: dict[str, Any] = {k: v.get("seconds") for k, v in runs.items()}
    tb = runs.get("(b) tiered, host tier", {}).get("seconds")
    on = runs.get("(c) tiered, disk tier, prefetch on", {}).get("seconds")
    off = runs.get("(c) tiered, disk tier, prefetch off", {}).get("seconds")
    b = tb / base if tb and base else None
    hidden = (off - on) / (off - base) if on and off and base and off > base else None
    targets = [Target("(b)/(a)", b, f"<= {LOADING_TIERED_MAX:g}x", None if b is None else b <= LOADING_TIERED_MAX),
               Target("prefetch hides", hidden, f">= {LOADING_HIDDEN_MIN:g}",
                      None if hidden is None else hidden >= LOADING_HIDDEN_MIN),
               Target("identical losses", None, "bit for bit", res.get("identical_losses"), sized=False)]
    return f"(a) {_fmt(base, '.2f')} s, (b)/(a) {_fmt(b, '.2f')}x, hidden {_fmt(hidden, '.2f')}", figs, targets, []


def _pytest_counts(tail: list[str]) -> dict[str, int]:
    for line in tail[::-1]:
        m = re.search(r"(\d+) tests? collected", line)
        if m:
            return {"collected": int(m.group(1))}
        found = re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)\b", line)
        if found and " in " in line:
            out = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
            for n, k in found:
                out["errors" if k.startswith("error") else k] = int(n)
            return out
    return {}


def eval_tests(steps: list[StepResult], cuda: bool) -> tuple[str, dict[str, Any], list[Target], list[str]]:
    figs = {s.name: _pytest_counts(s.tail) for s in steps}
    parts, targets = [], []
    for name, c in figs.items():
        parts.append(f"{name}: " + (", ".join(f"{v} {k}" for k, v in c.items()) if c else "no summary line"))
        if cuda and c:
            bad = c.get("failed", 0) + c.get("errors", 0)
            targets.append(Target(f"{name} failed", float(bad), "0", bad == 0, sized=False))
            if name == "pytest-cuda":
                targets.append(Target(f"{name} skipped", float(c.get("skipped", 0)), "0 on a GPU",
                                      c.get("skipped", 0) == 0, sized=False))
    return "; ".join(parts), figs, targets, []


def eval_ddi(steps: list[StepResult], quick: bool) -> tuple[str, dict[str, Any], list[Target], list[str]]:
    tests: dict[str, list[float]] = {v: [] for v in DDI_RECIPES}
    figs: dict[str, Any] = {"runs": {}}
    for s in steps:
        variant = s.name[len("ddi-"):].rsplit("-s", 1)[0]
        r = s.result
        if s.status == "ok" and r:
            tests[variant].append(float(r["test"]))
            figs["runs"][s.name] = {"val": r.get("val"), "test": r.get("test"), "epochs": r.get("epochs"),
                                    "seconds": r.get("seconds")}
        else:
            figs["runs"][s.name] = {"status": s.status}
    parts, targets = [], []
    mean: dict[str, float | None] = {}
    for v, xs in tests.items():
        mean[v] = statistics.fmean(xs) if xs else None
        std = statistics.stdev(xs) if len(xs) > 1 else None
        figs[v] = {"test_hits20": xs, "mean": mean[v], "std": std, "n": len(xs)}
        each = "/".join(f"{x:.3f}" for x in xs)
        parts.append(f"{v} {_fmt(mean[v], '.4f')} ± {_fmt(std, '.4f')} (n={len(xs)}: {each or '-'})")
    lb_mean, lb_std = DDI_LEADERBOARD
    figs["leaderboard_graphsage"] = {"mean": lb_mean, "std": lb_std}
    m = mean["full"]
    targets.append(Target("full-graph mean test Hits@20", m, f">= {DDI_TARGET_MEAN:g} (LB {lb_mean} ± {lb_std})",
                          None if quick or m is None else m >= DDI_TARGET_MEAN))
    ratio = mean["saint-edge"] / m if m and mean["saint-edge"] is not None else None
    figs["saint_vs_full"] = ratio
    targets.append(Target("saint-edge / full", ratio, f">= {DDI_SAINT_VS_FULL:g}x",
                          None if quick or ratio is None else ratio >= DDI_SAINT_VS_FULL))
    parts.append(f"saint/full {_fmt(ratio, '.2f')}x; LB GraphSAGE {lb_mean:.4f} ± {lb_std:.4f}")
    return "; ".join(parts), figs, targets, []


def eval_pipe(res: dict[str, Any] | None) -> tuple[str, dict[str, Any], list[Target], list[str]]:
    if not res:
        return "no results", {}, [], []
    return f"test {res.get('test', float('nan')):.4f} in {res.get('seconds', float('nan')):.0f} s", \
        {"val": res.get("val"), "test": res.get("test"), "seconds": res.get("seconds")}, [], []


def evaluate(item: Item, steps: list[StepResult], args: argparse.Namespace) -> ItemResult:
    """The item's status, headline, figures and targets from its steps' results."""
    r = ItemResult(item.name, item.title, "ok", sum(s.seconds for s in steps), item.budget_s, notes=list(item.notes))
    if item.skip or item.fail:
        r.status, r.reason = ("skipped", item.skip) if item.skip else ("fail", item.fail)
        r.headline = f"{r.status}: {r.reason}"
        return r
    if item.concurrent:
        r.seconds = max((s.seconds for s in steps), default=0.0)
    if any(s.status == "timeout" for s in steps):
        r.status = "timeout"
    elif any(s.status == "fail" for s in steps):
        r.status = "fail"
    bad = [s for s in steps if s.status != "ok"]
    if bad:
        r.reason = ", ".join(f"{s.name} {s.status}" + (f" (rc {s.rc})" if s.rc is not None else "") for s in bad)
    first = steps[0].result if steps else None
    if item.name == "profile":
        r.headline, r.figures = eval_profile(steps)
    elif item.name == "samplers":
        r.headline, r.figures, r.targets, notes = eval_samplers(first, _load(Path(args.cpu_table)))
        r.notes += notes
    elif item.name == "train_step":
        r.headline, r.figures, r.targets, notes = eval_train_step(first, _load(CPU_TRAIN_STEP_TABLE))
        r.notes += notes
    elif item.name == "cache":
        r.headline, r.figures, r.targets, notes = eval_cache(first)
    elif item.name == "loading":
        r.headline, r.figures, r.targets, notes = eval_loading(first)
    elif item.name == "tests":
        r.headline, r.figures, r.targets, notes = eval_tests(steps, args.device.startswith("cuda"))
    elif item.name == "ddi":
        r.headline, r.figures, r.targets, notes = eval_ddi(steps, args.quick)
    elif item.name == "pipe":
        r.headline, r.figures, r.targets, notes = eval_pipe(first)
    if args.quick:
        sized = [t for t in r.targets if t.sized]
        for t in sized:
            t.met = None
        if sized:
            r.notes.append("quick run: size-dependent targets not evaluated")
    for s, step in zip(steps, item.steps):
        d = {"name": s.name, "status": s.status, "rc": s.rc, "seconds": round(s.seconds, 2), "argv": step.argv,
             "env": step.env, "result": s.result}
        if s.status != "ok":
            d["tail"] = s.tail
        r.steps.append(d)
    return r


# ----------------------------------------------------------------------------- reporting
def summary_table(results: list[ItemResult]) -> str:
    """The readable summary: one row per item, then its targets and notes."""
    lines = ["| item | status | seconds | targets met | key figures |", "|---|---|---|---|---|"]
    for r in results:
        ev = [t for t in r.targets if t.met is not None]
        met = f"{sum(t.met for t in ev)}/{len(ev)}" if ev else "-"
        head = r.headline.replace("|", "/") or (r.reason or "")
        lines.append(f"| {r.name} | {r.status} | {r.seconds:.0f} | {met} | {head} |")
    lines.append("")
    for r in results:
        detail = [t.text() for t in r.targets] + r.notes
        if r.reason and r.status not in ("skipped",) and r.reason not in r.headline:
            detail.insert(0, r.reason)
        if detail:
            lines.append(f"{r.name}: " + "; ".join(detail))
    return "\n".join(lines)


def summary_dict(results: list[ItemResult], meta: dict[str, Any]) -> dict[str, Any]:
    return {"suite": meta, "items": [asdict(r) for r in results],
            "ok": all(r.status in ("ok", "skipped") for r in results)}


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _budget(text: str) -> tuple[str, float]:
    name, _, sec = text.partition("=")
    if name not in ITEMS or not sec:
        raise argparse.ArgumentTypeError(f"--budget takes ITEM=SECONDS with ITEM one of {', '.join(ITEMS)}")
    return name, float(sec)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="items: " + ", ".join(ITEMS) + "; groups: " + ", ".join(GROUPS))
    p.add_argument("--device", default="cuda", help="cuda (the measurements) or cpu (a dry run)")
    p.add_argument("--quick", action="store_true", help="reduced sizes (each benchmark's own --quick; ddi 1 epoch)")
    p.add_argument("--out-dir", default=str(REPO / "results" / "gpu_suite"),
                   help="suite.log, summary.json, summary.md land here (flat)")
    p.add_argument("--data-root", default=os.environ.get("GNNSYS_DATA") or None,
                   help="data folder with ogb/ogbl_ddi (default: $GNNSYS_DATA)")
    p.add_argument("--only", default=None, help="ITEM[,ITEM]: run a subset (items or groups)")
    p.add_argument("--total-budget", type=float, default=None,
                   help=f"seconds for the whole suite (default {TOTAL_BUDGET_CUDA:g} on cuda, "
                        f"{TOTAL_BUDGET_CPU:g} on cpu)")
    p.add_argument("--budget", type=_budget, action="append", default=None, metavar="ITEM=SECONDS",
                   help="override one item's budget (repeatable)")
    p.add_argument("--ddi-seeds", type=int, default=None, help="seeds per ddi variant (default 3; --quick 1)")
    p.add_argument("--cpu-table", default=str(CPU_SAMPLER_TABLE), help="the CPU sampler table compared with")
    p.add_argument("--work-dir", default=None, help="sub-benchmarks' JSON files (default: a temporary folder)")
    p.add_argument("--dry-plan", action="store_true", help="print the planned commands and exit")
    args = p.parse_args(argv)
    args.budget = dict(args.budget or [])
    try:
        selected(args.only)
    except ValueError as e:
        p.error(str(e))
    if args.data_root:
        args.data_root = str(Path(args.data_root).resolve())
    if args.total_budget is None:
        args.total_budget = TOTAL_BUDGET_CUDA if args.device.startswith("cuda") else TOTAL_BUDGET_CPU
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.monotonic()
    deadline = t_start + args.total_budget
    out_dir = Path(args.out_dir)
    own_work = not args.work_dir and not args.dry_plan
    if args.dry_plan:
        args.work_dir = args.work_dir or "WORK"
    else:
        args.work_dir = args.work_dir or tempfile.mkdtemp(prefix="gpu_suite_")
        Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    pr = probe(args)
    items = plan(args, pr)
    if args.dry_plan:
        for it in items:
            state = it.skip and f"skipped: {it.skip}" or it.fail and f"fail: {it.fail}" or f"budget {it.budget_s:g} s"
            print(f"{it.name} ({state}){' [concurrent steps]' if it.concurrent else ''}")
            for s in it.steps:
                print("    " + " ".join(_quote(a) for a in s.argv) + "".join(f" [{k}={v}]" for k, v in s.env.items()))
        return 0
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in ("suite.log", "summary.json", "summary.md"):
        (out_dir / f).unlink(missing_ok=True)
    log = Log(out_dir / "suite.log", echo=sys.stdout)
    meta: dict[str, Any] = {"argv": sys.argv[1:] if argv is None else argv, "device": args.device,
                            "quick": args.quick, "total_budget_s": args.total_budget, "data_root": args.data_root,
                            "probe": asdict(pr), "python": sys.version.split()[0], "started": time.strftime("%F %T"),
                            "work_dir": args.work_dir, "cwd": str(REPO)}
    try:
        import torch

        meta["torch"] = torch.__version__
        if pr.cuda_devices:
            meta["gpu"] = [torch.cuda.get_device_name(i) for i in range(pr.cuda_devices)]
    except Exception as e:  # a report, not a check
        meta["torch"] = f"unavailable: {e}"
    log.say(f"# gpu_suite: device {args.device}{' (quick)' if args.quick else ''}, {pr.cuda_devices} GPU(s) "
            f"{meta.get('gpu', '')}, {pr.cpus} CPUs, total budget {args.total_budget:g} s, out {out_dir}, "
            f"work {args.work_dir}")
    base_env = {"PYTHONUNBUFFERED": "1"}
    if args.data_root:
        base_env["GNNSYS_DATA"] = args.data_root
    results: dict[str, ItemResult] = {}
    lock = threading.Lock()

    def record(item: Item, steps: list[StepResult]) -> None:
        r = evaluate(item, steps, args)
        with lock:
            results[item.name] = r
            done = [results[i.name] for i in items if i.name in results]
            meta["elapsed_s"] = round(time.monotonic() - t_start, 1)
            _write(out_dir / "summary.json", json.dumps(summary_dict(done, meta), indent=1, default=str))
        log.say(f"# {item.name}: {r.status} in {r.seconds:.0f} s - {r.headline or r.reason or ''}")
        for s in steps:
            if s.status != "ok":
                log.say(f"#   {s.name} {s.status}; its last lines:\n" + "\n".join("#     " + t for t in s.tail[-12:]))

    def one(item: Item) -> None:
        if item.skip or item.fail:
            record(item, [])
            return
        if deadline - time.monotonic() <= 1.0:
            record(item, [StepResult(s.name, "timeout", None, 0.0, ["(not started: the total budget was spent)"])
                          for s in item.steps])
            return
        log.say(f"# {item.name}: {item.title} ({len(item.steps)} step(s), budget {item.budget_s:g} s"
                f"{', stretches to the total' if item.stretch else ''})")
        try:
            steps = run_item(item, deadline, log, base_env)
        except Exception as e:  # one item's failure must not end the suite
            steps = [StepResult(item.name, "fail", None, 0.0, [f"suite error: {e!r}"])]
        record(item, steps)

    try:
        for item in (i for i in items if i.exclusive):
            one(item)
        threads = [threading.Thread(target=one, args=(i,)) for i in items if not i.exclusive]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    except KeyboardInterrupt:
        log.say("# interrupted: ending the running steps")
        kill_all()
    ordered = [results[i.name] for i in items if i.name in results]
    meta["elapsed_s"] = round(time.monotonic() - t_start, 1)
    table = summary_table(ordered)
    _write(out_dir / "summary.json", json.dumps(summary_dict(ordered, meta), indent=1, default=str))
    _write(out_dir / "summary.md", f"# gpu_suite, device {args.device}{' (quick)' if args.quick else ''}, "
                                   f"{meta['started']}, {meta['elapsed_s']:.0f} s\n\n{table}\n")
    log.say(f"\n## gpu_suite summary ({args.device}{', quick' if args.quick else ''}; {meta['elapsed_s']:.0f} s of "
            f"{args.total_budget:g})\n\n{table}\n\nfiles: {', '.join(sorted(f.name for f in out_dir.iterdir()))}")
    log.close()
    if own_work:  # the JSON files are inside summary.json
        shutil.rmtree(args.work_dir, ignore_errors=True)
    return 0 if all(r.status in ("ok", "skipped") for r in ordered) else 1


if __name__ == "__main__":
    sys.exit(main())
