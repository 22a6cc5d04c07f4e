"""ForwardGNN reproduction: forward-only, layer-local training next to backpropagation.

    python -m gnnsys.experiments.forwardgnn --quick
    python -m gnnsys.experiments.forwardgnn --part node --datasets cora citeseer --layers gcn \\
        --depths 2 --methods backprop sf --out results/fwd_node.json
    python -m gnnsys.experiments.forwardgnn --part memory --out results/fwd_mem.json
    python -m gnnsys.experiments.forwardgnn --report results/fwd_node.json results/fwd_mem.json

Parts:

- ``node``: Cora/CiteSeer x GCN/SAGE/GAT x depth x {backprop, every node variant}; the paper's
  protocol (5 random 64/16/20 splits, seeds 0-4: mean ± std) and the public Planetoid split.
- ``link``: Cora (85/5/10 edge split, ROC-AUC) and ogbl-ddi (official split, Hits@20) x
  {backprop, forward-ce, forward-ff, top-down}.
- ``memory``: peak memory of one training step vs depth (hidden 128) for SF and backprop on a
  generated 100k-node graph. Each configuration runs in a fresh subprocess; CPU peak is the
  process's resident high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``)
  minus its resident size just before the step, with glibc told to serve every allocation
  above 64 KiB by ``mmap`` so freed tensors go back to the OS and cannot hide in the heap.
  The bytes autograd saves for backward (``saved_tensors_hooks``) are a second, exact
  column. On a GPU, ``torch.cuda.max_memory_allocated`` (peak minus the allocation before
  the step).

Results are appended to ``--out`` (JSON, one record per run; runs already there are skipped,
so an interrupted grid resumes) and printed as markdown tables. The greedy variants (sf,
ff-la, ff-vn) train only the deepest of ``--depths``: their shallower depths are the first
layers of that run, read off its per-layer results (records marked ``derived_from_depth``;
``--no-greedy-prefix`` trains each depth anew, with the same numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from gnnsys.experiments.suites import FORWARD_NODE_METHODS as NODE_METHODS  # the suites' list

from gnnsys.config import SAINT_UNSEEN_EDGES, VN_EDGE_DIRECTIONS, default_vn_edges

LINK_METHODS = ("backprop", "forward-ce", "forward-ff", "top-down")
TOPDOWN = ("sf-top2input", "sf-top2loss", "top-down")
#: Greedy variants: layer ``i`` trains once layers ``0..i-1`` are frozen, and its construction,
#: data and random stream do not depend on how many layers follow. So a depth-``d`` model is
#: the first ``d`` layers of a deeper run, and its result is that run's per-layer record
#: ``d - 1`` (``tests/test_forward.py::test_greedy_depth_prefix`` checks this).
GREEDY = ("sf", "ff-la", "ff-vn")


# --------------------------------------------------------------------------- results file
def load_records(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text()) if path.exists() else []


def save_record(path: Path, rec: dict[str, Any]) -> None:
    recs = load_records(path)
    recs.append(rec)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(recs, indent=1, default=float))
    tmp.replace(path)


def sampler_label(args: argparse.Namespace) -> str:
    """The ``sampler`` a record names: ``--sampler``, marked when unseen GraphSAINT edges
    are counted once (so those runs get their own rows)."""
    if args.sampler != "full" and args.saint_unseen_edges == "once":
        return f"{args.sampler} (unseen once)"
    return args.sampler


def key_of(rec: dict[str, Any]) -> tuple:
    base = tuple(rec.get(k, "full" if k == "sampler" else None)
                 for k in ("part", "dataset", "layer", "depth", "method", "protocol", "seed", "sampler"))
    return base + (rec.get("heads", 1), rec.get("vn_edges", "both"))


# --------------------------------------------------------------------------- one run
def run_config(args: argparse.Namespace, part: str, method: str, layer: str, depth: int, seed: int,
               protocol: str, name: str) -> Any:
    """The ``TrainConfig`` of one run (same layer, depth, width and optimizer for all methods)."""
    from gnnsys.config import TrainConfig

    forward = method != "backprop"
    kw: dict[str, Any] = dict(
        layer=layer, layers=depth, hidden=args.hidden, seed=seed, quiet=True,
        trainer="forward" if forward else "backprop", forward_variant=method if forward else None,
        lr=args.lr, weight_decay=args.weight_decay, epochs=args.epochs, patience=args.patience,
        eval_every=args.eval_every_topdown if method in TOPDOWN else 1,
        forward_timesteps=args.timesteps, sampler=args.sampler, device=args.device,
        saint_unseen_edges=args.saint_unseen_edges,
    )
    if part == "node":
        kw.update(dataset=name, split=protocol, dropout=args.dropout)
    else:
        kw.update(dataset=name, dropout=args.link_dropout, batch_size=args.link_batch, link_head="dot")
    if args.tau is not None:
        kw["forward_tau"] = args.tau
    kw["forward_vn_edges"] = args.vn_edges if forward else None
    if layer == "gat" and args.gat_heads != 1:
        kw["extra"] = {"layer_kwargs": {"heads": args.gat_heads}}
    return TrainConfig(**kw)


def train_one(cfg: Any, data: Any) -> dict[str, Any]:
    from gnnsys.api import train

    t0 = time.perf_counter()
    res = train(cfg, data=data)
    run = res["runs"][0]
    return {"val": res["val"], "test": res["test"], "epochs": res["epochs"], "seconds": time.perf_counter() - t0,
            "metric": res["metric"], "per_layer": run.get("per_layer", [])}


def l2_input(ds: Any) -> Any:
    """``ds`` with row-L2-normalized node features: the input every ForwardGNN layer 0 sees."""
    import dataclasses

    from gnnsys.storage.feature_store import InMemoryFeatureStore

    from gnnsys.trainers.forward.common import l2norm

    x = ds.features.gather(torch.arange(ds.num_nodes)).float()
    return dataclasses.replace(ds, features=InMemoryFeatureStore(l2norm(x)))


def prefix_records(recs: list[dict[str, Any]], depths: list[int]) -> list[dict[str, Any]]:
    """Records of full-batch greedy runs at ``depths``, read off the per-layer results of
    deeper runs in ``recs`` (marked ``derived_from_depth``); only keys ``recs`` lacks."""
    have = {key_of(r) for r in recs}
    new: list[dict[str, Any]] = []
    for r in recs:
        if (r.get("part") != "node" or r.get("method") not in GREEDY or r.get("sampler", "full") != "full"
                or "derived_from_depth" in r):
            continue
        per_layer = r.get("per_layer") or []
        for d in sorted(set(depths)):
            if not d < r["depth"] <= len(per_layer):
                continue
            rec = {k: v for k, v in r.items() if k not in ("val", "test", "epochs", "seconds", "per_layer")}
            rec.update(depth=d, val=per_layer[d - 1]["valid"], test=per_layer[d - 1]["test"],
                       per_layer=per_layer[:d], derived_from_depth=r["depth"])
            if key_of(rec) not in have:
                have.add(key_of(rec))
                new.append(rec)
    return new


def node_part(args: argparse.Namespace) -> None:
    from gnnsys.datasets import load_dataset

    out = Path(args.out)
    prefix = args.greedy_prefix and args.sampler == "full"

    def derive() -> None:
        for rec in prefix_records(load_records(out), args.depths) if prefix else []:
            save_record(out, rec)

    derive()
    done = {key_of(r) for r in load_records(out)}
    for name in args.datasets:
        ds = load_dataset(name, root=args.data_root)
        ds_bp = l2_input(ds) if args.bp_input == "l2" else ds
        for layer in args.layers:
            for depth in args.depths:
                for protocol in args.protocols:
                    seeds = list(range(args.seeds)) if protocol == "random" else [0]
                    for method in args.methods:
                        if method not in NODE_METHODS:
                            continue
                        for seed in seeds:
                            rec = dict(part="node", dataset=name, layer=layer, depth=depth, method=method,
                                       protocol=protocol, seed=seed, sampler=sampler_label(args))
                            if layer == "gat":
                                rec["heads"] = args.gat_heads
                            vn_edges = args.vn_edges or default_vn_edges(method)
                            if method != "backprop" and vn_edges != "both":
                                rec["vn_edges"] = vn_edges
                            if key_of(rec) in done:
                                continue
                            if prefix and method in GREEDY and depth < max(args.depths):
                                continue  # read off the deepest run's per-layer results
                            cfg = run_config(args, "node", method, layer, depth, seed, protocol, name)
                            if method == "backprop":
                                rec["input"] = args.bp_input
                            rec.update(train_one(cfg, ds_bp if method == "backprop" else ds))
                            save_record(out, rec)
                            print(f"{name} {layer} x{depth} {protocol} seed {seed} {method}: "
                                  f"val {rec['val']:.4f} test {rec['test']:.4f} ({rec['seconds']:.0f}s)", flush=True)
                            derive()


def link_dataset(name: str, root: str | None, seed: int) -> Any:
    from gnnsys.datasets import load_dataset
    from gnnsys.datasets.splits import link_split

    if name.startswith("ogbl"):
        return load_dataset(name, root=root)
    return link_split(load_dataset(name, root=root), val=0.05, test=0.1, seed=seed)


def link_part(args: argparse.Namespace) -> None:
    out = Path(args.out)
    done = {key_of(r) for r in load_records(out)}
    for name in args.link_datasets:
        seeds = [0] if name.startswith("ogbl") else list(range(args.link_seeds))
        for seed in seeds:
            ds = link_dataset(name, args.data_root, seed)
            # backprop sees the input the forward layers see (ogbl-ddi has no features)
            ds_bp = l2_input(ds) if args.bp_input == "l2" and not name.startswith("ogbl") else ds
            for layer in args.link_layers:
                for depth in args.link_depths:
                    for method in args.methods:
                        if method not in LINK_METHODS:
                            continue
                        rec = dict(part="link", dataset=name, layer=layer, depth=depth, method=method,
                                   protocol="official" if name.startswith("ogbl") else "85/5/10", seed=seed,
                                   sampler=sampler_label(args))
                        if key_of(rec) in done:
                            continue
                        cfg = run_config(args, "link", method, layer, depth, seed, "link", name)
                        if name.startswith("ogbl"):
                            from dataclasses import replace

                            cfg = replace(cfg, epochs=args.ddi_epochs, patience=None, eval_every=args.ddi_eval_every)
                        if method == "backprop" and not name.startswith("ogbl"):
                            rec["input"] = args.bp_input
                        rec.update(train_one(cfg, ds_bp if method == "backprop" else ds))
                        save_record(out, rec)
                        print(f"{name} {layer} x{depth} seed {seed} {method}: {rec['metric']} val {rec['val']:.4f} "
                              f"test {rec['test']:.4f} ({rec['seconds']:.0f}s)", flush=True)


# --------------------------------------------------------------------------- memory
def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def memory_child(method: str, depth: int, nodes: int, hidden: int, device: str) -> dict[str, Any]:
    """One training step of ``method`` at ``depth`` layers; runs in its own process."""
    from gnnsys.models import build_model

    from gnnsys.batch import MiniBatch
    from gnnsys.config import TrainConfig
    from gnnsys.datasets import load_dataset
    from gnnsys.trainers.forward.common import ForwardSettings, class_means, l2norm, make_layer, make_optimizer
    from gnnsys.trainers.forward.common import with_virtual_nodes as add_vn

    torch.manual_seed(0)
    dev = torch.device(device)
    ds = load_dataset("powerlaw", num_nodes=nodes, avg_degree=10, num_features=hidden, num_classes=10)
    full = MiniBatch.full(ds, dev)
    y = ds.labels.to(dev)
    tr = ds.split["train"].to(dev)
    full.target = tr
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        try:
            st = t.untyped_storage()
            saved[st.data_ptr()] = st.nbytes()
        except (RuntimeError, NotImplementedError):  # sparse tensors have no plain storage
            saved[id(t)] = sum(x.numel() * x.element_size() for x in (t.crow_indices(), t.col_indices(), t.values())) \
                if t.is_sparse_csr else 0
        return t

    if method == "backprop":
        model = build_model("gcn", hidden, hidden, 10, depth, dropout=0.5).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        full.adj("gcn")

        def step() -> None:
            model.train()
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                out = model(full)
                loss = torch.nn.functional.cross_entropy(out[tr], y[tr])
            opt.zero_grad()
            loss.backward()
            opt.step()
    else:
        s = ForwardSettings.from_config(TrainConfig(trainer="forward", forward_variant="sf", layer="gcn",
                                                    layers=depth, hidden=hidden, lr=0.01, dropout=0.5), "node")
        x = l2norm(full.x)
        view = add_vn(full, x, tr, y[tr], 10, class_means(x, tr, y[tr], 10))
        view.adj("gcn")
        layers = [make_layer(s, hidden, hidden).to(dev) for _ in range(depth)]
        top = layers[-1]
        opt = make_optimizer(top, s)
        from gnnsys.trainers.forward.common import class_logits

        def step() -> None:
            # SF's training step of the deepest layer: its detached input from the frozen
            # layers below (no autograd graph), then one local forward/backward/update.
            h = view.x
            with torch.no_grad():
                for lower in layers[:-1]:
                    lower.eval()
                    h = l2norm(lower(h, view))
            top.train()
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                out = top(h, view)
                loss = torch.nn.functional.cross_entropy(class_logits(out[tr], out[nodes:], s), y[tr])
            opt.zero_grad()
            loss.backward()
            opt.step()

    res: dict[str, Any] = {"method": method, "depth": depth, "nodes": nodes, "hidden": hidden, "device": device}
    if dev.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        res["cuda_peak_mib"] = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        base = _status_kib("VmRSS")
        t0 = time.perf_counter()
        step()
        res["seconds"] = time.perf_counter() - t0
        res["rss_peak_mib"] = (_status_kib("VmHWM") - base) / 1024
    res["saved_mib"] = sum(saved.values()) / 2**20
    return res


def memory_part(args: argparse.Namespace) -> None:
    out = Path(args.out)
    done = {(r.get("method"), r.get("depth"), r.get("nodes"), r.get("device")) for r in load_records(out)
            if r.get("part") == "memory"}
    devices = args.memory_devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    for device in devices:
        for depth in args.memory_depths:
            for method in ("sf", "backprop"):
                if (method, depth, args.memory_nodes, device) in done:
                    continue
                cmd = [sys.executable, "-m", "gnnsys.experiments.forwardgnn", "--memory-child", method, str(depth),
                       str(args.memory_nodes), str(args.memory_hidden), device]
                p = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if p.returncode != 0:
                    print(f"memory {method} x{depth} failed:\n{p.stderr[-2000:]}", flush=True)
                    continue
                rec = {"part": "memory", **json.loads(p.stdout.strip().splitlines()[-1])}
                save_record(out, rec)
                col = "cuda_peak_mib" if device == "cuda" else "rss_peak_mib"
                print(f"memory {device} {method} x{depth}: peak {rec[col]:.0f} MiB, saved {rec['saved_mib']:.0f} MiB",
                      flush=True)


# --------------------------------------------------------------------------- tables
def _fmt(vals: list[float]) -> str:
    if not vals:
        return "-"
    m = 100 * statistics.fmean(vals)
    return f"{m:.1f} ± {100 * statistics.pstdev(vals):.1f}" if len(vals) > 1 else f"{m:.1f}"


def report(recs: list[dict[str, Any]]) -> str:
    """Markdown tables of every part present in ``recs``."""
    lines: list[str] = []
    node = [r for r in recs if r.get("part") == "node"]
    if node:

        def method_of(r: dict[str, Any]) -> str:  # one-way virtual-node links get their own column
            return r["method"] + (" (to-vn)" if r.get("vn_edges") == "to-vn" else "")

        known = [m for name in NODE_METHODS for m in (name, name + " (to-vn)")]
        methods = [m for m in known if any(method_of(r) == m for r in node)]
        one_way = "sf (to-vn)" in methods
        lines += ["### Node classification (accuracy %, test; random = mean ± std over seeds)", "",
                  "| dataset | layer | depth | protocol | batches | n | " + " | ".join(methods) + " | SF − BP |"
                  + (" SF (to-vn) − BP |" if one_way else ""),
                  "|" + "---|" * (7 + len(methods) + one_way)]

        def grp(r: dict[str, Any]) -> tuple:
            layer = r["layer"] + (f" ({r['heads']} heads)" if r.get("heads", 1) != 1 else "")
            return r["dataset"], layer, r["depth"], r["protocol"], r.get("sampler", "full")

        for g in sorted({grp(r) for r in node}):
            rs = [r for r in node if grp(r) == g]
            by = {m: [r["test"] for r in rs if method_of(r) == m] for m in methods}

            def gap(m: str, by: dict[str, list[float]] = by) -> str:
                if not (by.get(m) and by.get("backprop")):
                    return "-"
                return f"{100 * (statistics.fmean(by[m]) - statistics.fmean(by['backprop'])):+.1f}"

            n = max(len(v) for v in by.values())
            cells = [_fmt(by[m]) + (f" ({len(by[m])} runs)" if 0 < len(by[m]) < n else "") for m in methods]
            cells += [gap("sf")] + ([gap("sf (to-vn)")] if one_way else [])
            lines.append(f"| {g[0]} | {g[1]} | {g[2]} | {g[3]} | {g[4]} | {n} | " + " | ".join(cells) + " |")
        lines.append("")
    link = [r for r in recs if r.get("part") == "link"]
    if link:
        methods = [m for m in LINK_METHODS if any(r["method"] == m for r in link)]
        lines += ["### Link prediction (test; Cora ROC-AUC %, ogbl-ddi Hits@20 %)", "",
                  "| dataset | layer | depth | metric | n | " + " | ".join(methods) + " |",
                  "|" + "---|" * (5 + len(methods))]
        for g in sorted({(r["dataset"], r["layer"], r["depth"]) for r in link}):
            rs = [r for r in link if (r["dataset"], r["layer"], r["depth"]) == g]
            by = {m: [r["test"] for r in rs if r["method"] == m] for m in methods}
            n = max(len(v) for v in by.values())
            lines.append(f"| {g[0]} | {g[1]} | {g[2]} | {rs[0]['metric']} | {n} | "
                         + " | ".join(_fmt(by[m]) for m in methods) + " |")
        lines.append("")
    mem = [r for r in recs if r.get("part") == "memory"]
    if mem:
        for device in sorted({r["device"] for r in mem}):
            col = "cuda_peak_mib" if device == "cuda" else "rss_peak_mib"
            what = "torch.cuda.max_memory_allocated" if device == "cuda" else "RSS high-water mark − RSS before"
            rs = [r for r in mem if r["device"] == device]
            nodes = rs[0]["nodes"]
            lines += [f"### Peak memory of one training step ({device}, {what}; GCN, hidden 128, {nodes:,} nodes)",
                      "", "| depth | SF peak MiB | SF saved MiB | BP peak MiB | BP saved MiB |",
                      "|---|---|---|---|---|"]
            for d in sorted({r["depth"] for r in rs}):
                row = {r["method"]: r for r in rs if r["depth"] == d}
                cells = []
                for m in ("sf", "backprop"):
                    r = row.get(m)
                    cells += [f"{r[col]:.0f}", f"{r['saved_mib']:.0f}"] if r else ["-", "-"]
                lines.append(f"| {d} | " + " | ".join(cells) + " |")
            lines.append("")
        if not any(r["device"] == "cuda" for r in mem):
            lines.append("CUDA peak (`torch.cuda.max_memory_allocated`): not measured here (no GPU).\n")
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI
def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--quick", action="store_true", help="a small grid that runs in a few minutes")
    a("--part", nargs="+", default=["node", "link", "memory"], choices=("node", "link", "memory"))
    a("--datasets", nargs="+", default=["cora", "citeseer"])
    a("--layers", nargs="+", default=["gcn", "sage", "gat"])
    a("--depths", nargs="+", type=int, default=[1, 2, 3, 4])
    a("--methods", nargs="+", default=list(NODE_METHODS) + list(LINK_METHODS[1:]))
    a("--protocols", nargs="+", default=["random", "public"], choices=("random", "public"))
    a("--seeds", type=int, default=5)
    a("--hidden", type=int, default=128)
    a("--epochs", type=int, default=500, help="per layer (greedy), time steps (top-down), epochs (backprop)")
    a("--patience", type=int, default=50)
    a("--lr", type=float, default=0.01)
    a("--weight-decay", type=float, default=5e-4)
    a("--dropout", type=float, default=0.5)
    a("--tau", type=float, default=None)
    a("--vn-edges", default=None, choices=VN_EDGE_DIRECTIONS,
      help="class virtual-node links of the forward variants (to-vn: member -> class node only; "
           "default: each variant's own, to-vn for sf and both for the others)")
    a("--gat-heads", type=int, default=1, help="attention heads of the gat layer (concatenated; the paper's code: 4)")
    a("--bp-input", default="l2", choices=("l2", "raw"),
      help="backprop's node features: l2 (row-L2-normalized, the input the forward variants see; default) "
           "or raw (the loader's row-sum-normalized features)")
    a("--timesteps", type=int, default=10)
    a("--greedy-prefix", action=argparse.BooleanOptionalAction, default=True,
      help="greedy variants (sf, ff-la, ff-vn) on full batches: train only the deepest of --depths "
           "and read the shallower depths off its per-layer results (default; identical numbers)")
    a("--eval-every-topdown", type=int, default=5)
    a("--sampler", default="full")
    a("--saint-unseen-edges", choices=SAINT_UNSEEN_EDGES, default="clip",
      help="GraphSAINT: weight of edges pre-sampling never saw (clip: the original's 1e4; once: C_v, "
           "gnnsys's default). This reproduction keeps clip as its default so that its records keep their keys "
           "(runs with once are marked 'unseen once')")
    a("--link-datasets", nargs="+", default=["cora", "ogbl-ddi"])
    a("--link-layers", nargs="+", default=["sage"])
    a("--link-depths", nargs="+", type=int, default=[2])
    a("--link-seeds", type=int, default=1)
    a("--link-dropout", type=float, default=0.0)
    a("--link-batch", type=int, default=65536)
    a("--ddi-epochs", type=int, default=20)
    a("--ddi-eval-every", type=int, default=5)
    a("--memory-depths", nargs="+", type=int, default=[2, 4, 8, 16, 32])
    a("--memory-nodes", type=int, default=100_000)
    a("--memory-hidden", type=int, default=128)
    a("--device", default="cpu", help="where the node and link runs train (cpu, cuda)")
    a("--memory-devices", nargs="+", default=None, help="default: cpu, and cuda when there is a GPU")
    a("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    a("--data-root", default=None)
    a("--out", default="results/forwardgnn.json")
    a("--report", nargs="+", default=None, help="only print the tables of these result files")
    a("--memory-child", nargs=5, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.datasets, args.layers, args.depths, args.seeds = ["cora"], ["gcn"], [2], 2
        args.epochs, args.patience = 60, 20
        args.link_datasets, args.ddi_epochs = ["cora"], 2
        args.memory_depths, args.memory_nodes = [2, 4, 8], 20_000
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        method, depth, nodes, hidden, device = args.memory_child
        print(json.dumps(memory_child(method, int(depth), int(nodes), int(hidden), device)))
        return
    if args.report:
        recs = [r for f in args.report for r in load_records(Path(f))]
        print(report(recs))
        return
    if args.data_root is None and not os.environ.get("GNNSYS_DATA"):
        shared = Path(__file__).resolve().parents[1].parent / "shared" / "data"
        if shared.exists():
            args.data_root = str(shared)
    for part in args.part:
        {"node": node_part, "link": link_part, "memory": memory_part}[part](args)
    print(report(load_records(Path(args.out))))


if __name__ == "__main__":
    main()
