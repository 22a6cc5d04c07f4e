"""Out-of-core GraphSAINT training: features in a file larger than the memory budget.

One run, one generated power-law graph (default 2M nodes, ~40M directed edges) with 768-d
float32 features in a ``.npy`` feature file (~6 GB), GraphSAINT random-walk batches (3000 roots
x 2), a 2-layer GCN (hidden 128, Adam), ``--epochs`` epochs per configuration, all from the same
initial weights over the same batches:

- ``memory``: every row in memory (the reference: the file read whole), run first and again
  last (``memory-again``; ``--no-bracket``: once): the epoch ratio is against the mean of both
  runs' epochs, so a slow spell of the shared machine during the disk runs weighs on both sides;
- ``memmap``: ``numpy.memmap`` with the file's pages dropped before each epoch (the page cache
  decides; its disk reads come from ``/proc/self/io``);
- ``memmap-budget``: today's ``DiskFeatureStore`` (plain ``numpy.memmap``, no cache tier) with
  its page cache held to the same ``--memory-budget`` by a memory cgroup
  (``experiments/memory_cgroup.py``; root only, skipped with the reason elsewhere): the memmap run
  of a machine whose RAM the features exceed. It thrashes, so it runs for at most
  ``--memmap-budget-seconds`` and its epoch time is extrapolated from the steps it finished
  (``epoch_estimate_s``; the time it ran is a lower bound);
- ``rows``: the store's own ``O_DIRECT`` reads in the plain row layout (sorted, merged pages);
- ``packed``: DiskGNN's packed layout, one packed file per epoch written from the epoch's plan:
  the first epoch's before it (reported apart as its packing), every later one's during the
  epoch before (``OutOfCoreStore(pack_ahead=True)``). Every epoch, the last included, also
  plans and packs the next one, so each measures the steady state of a longer run.

The three disk configurations hold a static cache tier (``--policy``, default GraphSAINT's
``C_v``) sized by ``--memory-budget`` (cache + staging + batch buffers). Per configuration and
epoch it prints epoch seconds, bytes read from disk, read amplification (bytes read / bytes of
the rows the batches needed), the disk tier's read throughput (bytes / seconds with a read in
flight), the cache hit rate and the process's peak RSS; then the packing time and file size,
the sequential ``O_DIRECT`` bandwidth of the same file, the targets, and whether every
configuration gave the same losses, bit for bit.

    python -m gnnsys.experiments.bench_disk                      # the full benchmark (~6 GB file)
    python -m gnnsys.experiments.bench_disk --quick              # small graph, seconds
    gnnsys bench disk --quick
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gnnsys.experiments.bench_samplers import add_graph_arguments, bench_graph
from gnnsys.experiments.memory_cgroup import memory_cgroup
from gnnsys.models import build_model
from gnnsys.samplers.saint_samplers import SaintRandomWalkSampler
from gnnsys.storage import DiskFeatureStore, InMemoryFeatureStore
from gnnsys.storage.allocator import limit_arenas
from gnnsys.storage.budget import format_bytes, parse_bytes
from gnnsys.storage.disk_io import PAGE, DiskFile, IOPool, aligned_empty, drop_file_pages
from gnnsys.storage.disk_tier import process_read_bytes
from gnnsys.storage.feature_file import FeatureFile, write_feature_file
from gnnsys.storage.out_of_core import OutOfCoreStore
from gnnsys.storage.packed import packed_path

from gnnsys.loading import FetchFeatures, LoadingPipeline, operator_norms
from gnnsys.trainers.backprop import node_loss

MODES = ("memmap", "memmap-budget", "rows", "packed", "memory")
#: The all-in-memory reference run again after the disk configurations (``--no-bracket``: once).
MEMORY_AGAIN = "memory-again"
IN_MEMORY_RUNS = ("memory", MEMORY_AGAIN)  # the runs that read the file whole into memory
TARGET_AMPLIFICATION = 1.3  # packed
TARGET_EPOCH_RATIO = 1.5  # packed epoch vs the all-in-memory epoch
TARGET_THROUGHPUT = 0.7  # of the sequential O_DIRECT bandwidth
TARGET_VS_MEMMAP = 5.0


def _rss() -> dict[str, int]:
    """Current and peak resident set size of this process (bytes)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) * 1024
    return {"rss": out.get("VmRSS", 0), "peak": out.get("VmHWM", 0)}


def _reset_peak_rss() -> None:
    """Start a new peak-RSS measurement (Linux: ``5`` to ``/proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:  # pragma: no cover - older kernels: the peak is the process's
        pass


def feature_file(path: Path, n: int, dim: int, chunk: int = 1 << 16) -> FeatureFile:
    """The benchmark's feature file (standard normal rows, chunk ``i`` drawn from seed ``i``),
    written with the chunked writer when missing or of another shape."""
    if path.exists():
        try:
            return FeatureFile.open(path, num_rows=n, dim=dim, dtype=np.float32)
        except Exception:  # noqa: BLE001 - another shape: write it again
            pass

    def chunks():
        for i, r in enumerate(range(0, n, chunk)):
            g = torch.Generator().manual_seed(i)
            yield torch.randn(min(chunk, n - r), dim, generator=g)

    t = time.perf_counter()
    ff = write_feature_file(path, chunks(), num_rows=n)
    print(f"# wrote {path} ({format_bytes(path.stat().st_size)}) in {time.perf_counter() - t:.1f} s", flush=True)
    return ff


def _warm(pool: IOPool, f: DiskFile, buf: np.ndarray) -> None:
    """One untimed read per I/O thread: the GIL-free read loop is compiled on its first call
    (about a second), which must not count as disk time."""
    k = pool.queue_depth
    offs = np.zeros(k, np.int64)
    pool.read(f, offs, np.full(k, PAGE, np.int64), buf, np.arange(k, dtype=np.int64) * PAGE)


def sequential_bandwidth(ff: FeatureFile, limit: int = 2 << 30, request: int = 1 << 20, depth: int = 8) -> float:
    """GB/s of sequential ``O_DIRECT`` reads of the first ``limit`` bytes of the file (1 MiB
    requests, ``depth`` in flight)."""
    f = DiskFile(ff.path, "direct")
    pool = IOPool(depth)
    buf = aligned_empty(64 << 20)
    total = min(limit, f.size - f.size % PAGE)
    _warm(pool, f, buf)
    t = time.perf_counter()
    off = 0
    while off < total:
        n = min(buf.size, total - off)
        offs = np.arange(off, off + n, request, dtype=np.int64)
        lens = np.minimum(request, off + n - offs)
        pool.read(f, offs, lens, buf, offs - off)
        off += n
    dt = time.perf_counter() - t
    pool.close()
    f.close()
    return total / dt / 1e9


def random_reads(ff: FeatureFile, seconds: float = 2.0, depth: int = 1, seed: int = 0) -> dict[str, float]:
    """IOPS and MB/s of random 4 KiB ``O_DIRECT`` reads of the file at queue depth ``depth``
    (``depth`` requests per call, for ``seconds``)."""
    f = DiskFile(ff.path, "direct")
    pool = IOPool(depth)
    buf = aligned_empty(depth * PAGE)
    _warm(pool, f, buf)
    rng = np.random.default_rng(seed)
    pages = f.size // PAGE
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        offs = np.sort(rng.integers(0, pages, depth)) * PAGE
        pool.read(f, offs, np.full(depth, PAGE, np.int64), buf, np.arange(depth, dtype=np.int64) * PAGE)
        n += depth
    dt = time.perf_counter() - t
    pool.close()
    f.close()
    return {"iops": n / dt, "MBps": n * PAGE / dt / 1e6, "queue_depth": depth}


class _TimeUp(Exception):
    """A time-limited store's deadline passed (``_DeadlineMemmapStore``)."""


class _DeadlineMemmapStore(DiskFeatureStore):
    """``DiskFeatureStore`` (sorted ``numpy.memmap`` reads) that raises ``_TimeUp`` once
    ``deadline`` (``time.perf_counter()``) has passed, checked between chunks of rows: a thrashing
    memmap can take minutes for one batch."""

    deadline = float("inf")
    chunk = 256

    def _read(self, ids: torch.Tensor) -> torch.Tensor:
        idx = ids.cpu().numpy()
        order = np.argsort(idx, kind="stable")
        rows = np.empty((idx.size, self.dim), dtype=self.array.dtype)
        for lo in range(0, idx.size, self.chunk):
            if time.perf_counter() > self.deadline:
                raise _TimeUp
            sel = order[lo:lo + self.chunk]
            rows[sel] = self.array[idx[sel]]
        return torch.from_numpy(rows)


def _memmap_budget(ff: FeatureFile, sampler, y, state, args, budget: int) -> dict[str, Any]:
    """Epoch 1 with ``DiskFeatureStore`` held to ``budget`` bytes by a memory cgroup, for at most
    ``args.memmap_budget_seconds``; the epoch time extrapolated from the finished steps."""
    store = _DeadlineMemmapStore(ff.path)
    drop_file_pages(ff.path)
    with memory_cgroup(budget) as (cg, why):
        if cg is None:
            print(f"  skipped: {why}", flush=True)
            return {"skipped": why}
        store.deadline = time.perf_counter() + args.memmap_budget_seconds
        read0 = process_read_bytes()
        r = _train(store, sampler, y, state, args, 1)
        r["cgroup_limit"], r["cgroup_peak"] = cg.limit, cg.peak_bytes()
    e = r["epochs"][0]
    e["read_bytes"] = process_read_bytes() - read0
    done = len(e["losses"])
    e["epoch_estimate_s"] = e["seconds"] * len(sampler) / done if done else None
    first = len(sampler)  # epoch 1's first batch index (_train ran epoch 1)
    need = sum(int(b.node_ids.numel()) for b in sampler.sample_at(range(first, first + done))) * ff.row_bytes
    e["amplification"] = e["read_bytes"] / need if need else None
    est = f"{e['epoch_estimate_s']:.0f} s" if done else f"more than {e['seconds']:.0f} s"
    print(f"  {done} of {len(sampler)} steps in {e['seconds']:.1f} s (limit {args.memmap_budget_seconds:g} s), "
          f"read {e['read_bytes'] / 1e9:.2f} GB; epoch estimate {est}; cgroup peak "
          f"{format_bytes(r['cgroup_peak'] or 0)} of {format_bytes(budget)}", flush=True)
    drop_file_pages(ff.path)
    return r


def _train(store, sampler, y, state, args, epochs: int, drop=None, steps: int | None = None) -> dict[str, Any]:
    """``epochs`` epochs (1..epochs of the sampler's stream) from ``state``; per epoch seconds,
    losses and the store's traffic (``steps``: stop each epoch after that many, for a warm-up; a
    store's ``_TimeUp`` ends the run where it is, marked ``timed_out``)."""
    torch.manual_seed(0)
    model = build_model("gcn", args.dim, args.hidden, args.classes, num_layers=2, dropout=0.0)
    model.load_state_dict(state)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    out = []
    for epoch in range(1, epochs + 1):
        sampler.set_epoch(epoch)
        if drop is not None:
            drop()
        pipe = LoadingPipeline(sampler, fetch=FetchFeatures(store, y), operators=operator_norms(model), prefetch=1)
        store.reset_stats()
        losses = []
        compute = 0.0  # the training steps themselves; the rest of the epoch is waiting for batches
        t0 = time.perf_counter()
        timed_out = False
        try:
            for b in pipe:  # begin_epoch (packing) runs here first, inside the timed epoch
                t1 = time.perf_counter()
                opt.zero_grad()
                loss = node_loss(model(b), b, y)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                compute += time.perf_counter() - t1
                if steps is not None and len(losses) >= steps:
                    break
        except _TimeUp:
            timed_out = True
        sec = time.perf_counter() - t0
        st = store.stats()
        rec = {"epoch": epoch, "seconds": sec, "compute_s": compute, "losses": losses, "stats": st}
        if timed_out:
            rec["timed_out"] = True
            print(f"  epoch {epoch}: stopped at the time limit after {sec:.1f} s, {len(losses)} steps", flush=True)
            out.append(rec)
            break
        if "disk" in st and isinstance(st["disk"].get("packing"), dict) and st["disk"]["packing"]["epoch"] == epoch:
            p = st["disk"]["packing"]
            if p.get("ahead"):  # written during the previous epoch: the epoch only waited for its end
                rec["packed_ahead"], rec["pack_wait_s"] = True, p.get("wait_s", 0.0)
            else:  # written before the epoch (the first one): the offline pass, reported apart
                rec["pack_s"] = p.get("pack_s", 0.0) + p.get("plan_s", 0.0)
                rec["train_s"] = sec - rec["pack_s"]
            rec["next_plan_s"] = p.get("next_plan_s", 0.0)  # in the epoch: the next epoch's plan
        rec["wait_s"] = rec.get("train_s", sec) - compute
        out.append(rec)
        print(f"  epoch {epoch}: {sec:.1f} s ({compute:.1f} s in training steps), {len(losses)} steps, "
              + _disk_line(st), flush=True)
    return {"epochs": out}


def _disk_line(st: dict[str, Any]) -> str:
    d = st.get("disk")
    if not d:
        return "all rows in memory"
    if "read_bytes" not in d:  # DiskFeatureStore: the page cache reads
        return f"{d.get('rows', 0)} rows through numpy.memmap"
    return (f"read {d['read_bytes'] / 1e9:.2f} GB, amplification {d['amplification']:.2f}, "
            f"{d['read_GBps']:.2f} GB/s busy, hit rate {st['cache']['hit_rate']:.3f}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        args.num_nodes, args.avg_degree, args.dim, args.roots, args.coverage = 20_000, 10.0, 256, 200, 3.0
        args.memory_budget = args.memory_budget if args.memory_budget != "2GB" else "16MB"
    budget = parse_bytes(args.memory_budget)
    limit_arenas()  # as an out-of-core run does, before any thread allocates (storage/allocator.py)
    root = Path(args.cache_dir or os.environ.get("GNNSYS_CACHE") or Path.home() / ".cache" / "gnnsys")
    os.environ["GNNSYS_CACHE"] = str(root)  # bench_graph caches the graph there too
    root.mkdir(parents=True, exist_ok=True)
    g = bench_graph(args.num_nodes, args.avg_degree, args.exponent)
    ff = feature_file(Path(args.feature_file) if args.feature_file else root / "bench_disk" /
                      f"x_n{g.num_nodes}_d{args.dim}.npy", g.num_nodes, args.dim)
    gen = torch.Generator().manual_seed(1)
    y = torch.randint(0, args.classes, (g.num_nodes,), generator=gen)
    print(f"# graph: {g.num_nodes} nodes, {g.num_edges} directed edges; {args.dim}-d float32 features in "
          f"{ff.path} ({format_bytes(ff.file_size)}); memory budget {format_bytes(budget)}; RW {args.roots} x "
          f"{args.walk_length}; torch threads {torch.get_num_threads()}; load average {os.getloadavg()[0]:.2f}",
          flush=True)
    sampler = SaintRandomWalkSampler(g, args.roots, args.walk_length, seed=0, group_size=8)
    t = time.perf_counter()
    sampler.compute_normalization(args.coverage)
    print(f"# pre-sampling (coverage {args.coverage:g}): {sampler.stats.num_subgraphs} subgraphs in "
          f"{time.perf_counter() - t:.1f} s; an epoch is {len(sampler)} batches", flush=True)
    counts = sampler.stats.node_count.cpu()
    seq = sequential_bandwidth(ff)
    rnd = {d: random_reads(ff, 2.0, d) for d in (1, args.queue_depth)}
    print(f"# sequential O_DIRECT reads of {ff.path.name}: {seq:.2f} GB/s; random 4 KiB reads: "
          + ", ".join(f"QD{d} {r['iops']:.0f} IOPS ({r['MBps']:.0f} MB/s)" for d, r in rnd.items()), flush=True)
    torch.manual_seed(0)
    state = build_model("gcn", args.dim, args.hidden, args.classes, num_layers=2, dropout=0.0).state_dict()
    if args.warmup_steps:  # kernels compiled, torch's pools started: no configuration pays for them
        t = time.perf_counter()
        warm = OutOfCoreStore(ff.path, budget, graph=g, layout="rows", policy=args.policy, sampler=sampler,
                              counts=counts, cache_dir=root, model_widths=(args.hidden, args.classes))
        _train(warm, sampler, y, state, args, 1, steps=args.warmup_steps)
        warm.close()
        del warm
        print(f"# warm-up: {args.warmup_steps} steps in {time.perf_counter() - t:.1f} s", flush=True)
    gc.collect()
    base_rss = _rss()["rss"]
    res: dict[str, Any] = {"graph": {"nodes": g.num_nodes, "edges": g.num_edges}, "dim": args.dim,
                           "file_bytes": ff.file_size, "memory_budget": budget, "roots": args.roots,
                           "walk_length": args.walk_length, "policy": args.policy, "epochs": args.epochs,
                           "batches": len(sampler), "sequential_GBps": seq, "base_rss": base_rss,
                           "random_4k": {str(d): r for d, r in rnd.items()},
                           "load_average": os.getloadavg()[0], "runs": {}}
    # the quick run's 16 MB budget is too small a cgroup limit for the process's own allocations
    modes = (args.modes or ",".join(m for m in MODES if not (args.quick and m == "memmap-budget"))).split(",")
    for mode in modes:
        if mode not in MODES:
            raise SystemExit(f"unknown mode {mode!r}; choose from {MODES}")
    if "memory" in modes and len(modes) > 1 and not args.no_bracket:
        # the reference at both ends: a slow spell of a shared machine during the disk runs
        # then weighs on the reference too (its epochs are the mean of both runs)
        modes = ["memory"] + [m for m in modes if m != "memory"] + [MEMORY_AGAIN]
    for mode in modes:
        print(f"{mode}:", flush=True)
        if mode == "memmap-budget":
            gc.collect()
            _reset_peak_rss()
            r = _memmap_budget(ff, sampler, y, state, args, budget)
            r["peak_rss"] = _rss()["peak"]
            res["runs"][mode] = r
            continue
        drop = store = x = None  # the previous configuration's store (and its mapped pages) gone first
        gc.collect()
        _reset_peak_rss()
        if mode in IN_MEMORY_RUNS:
            x = torch.from_numpy(np.fromfile(ff.path, np.float32, offset=ff.offset).reshape(ff.num_rows, ff.dim))
            store = InMemoryFeatureStore(x, check_finite=False)
        else:
            if mode == "packed":  # packed files of an earlier run would match the plan: packing is measured
                for e in (0, 1):
                    packed_path(root, ff, e).unlink(missing_ok=True)
            store = OutOfCoreStore(ff.path, budget, graph=g, layout=mode, policy=args.policy, sampler=sampler,
                                   counts=counts, cache_dir=root, model_widths=(args.hidden, args.classes),
                                   queue_depth=args.queue_depth)
            if mode == "memmap":
                drop = store.disk.drop_pages
        r = _train(store, sampler, y, state, args, args.epochs, drop)
        r["peak_rss"] = _rss()["peak"]
        if mode not in IN_MEMORY_RUNS:
            r["budget"] = store.stats()["budget"]
            r["packing"] = list(store.pack_log)
            store.close()
        res["runs"][mode] = r
    _table(res)
    return res


def _table(res: dict[str, Any]) -> None:
    runs = res["runs"]
    print()
    print("| configuration | epoch | epoch s | steps s | waiting s | GB read | amplification | read GB/s (busy) "
          "| hit rate | peak RSS GB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for mode, r in runs.items():
        if mode == "memmap-budget":
            _budget_row(r)
            continue
        for e in r["epochs"]:
            d = e["stats"].get("disk")
            sec = f"{e['seconds']:.1f}" + (f" ({e['train_s']:.1f} + pack {e['pack_s']:.1f})" if "pack_s" in e else
                                           f" (packed ahead, waited {e['pack_wait_s']:.1f})" if "pack_wait_s" in e
                                           else "")
            if d:
                cells = (f"{d['read_bytes'] / 1e9:.2f}", f"{d['amplification']:.2f}",
                         f"{d['read_GBps']:.2f}" if mode != "memmap" else "-", f"{e['stats']['cache']['hit_rate']:.3f}")
            else:
                cells = ("0", "-", "-", "-")
            times = f"{e['compute_s']:.1f} | {e['wait_s']:.1f} | "
            print(f"| {mode} | {e['epoch']} | {sec} | {times}" + " | ".join(cells) + f" | {r['peak_rss'] / 1e9:.2f} |")
    ref = runs.get("memory")
    if ref and MEMORY_AGAIN in runs:  # the reference: both memory runs, epoch by epoch
        ref = {"epochs": ref["epochs"] + runs[MEMORY_AGAIN]["epochs"]}
    same = None
    if ref:
        same = all([e["losses"] for e in r["epochs"]] == [e["losses"] for e in runs["memory"]["epochs"]]
                   for m, r in runs.items() if m != "memmap-budget")
        mb = runs.get("memmap-budget", {}).get("epochs")
        if mb:  # a prefix of epoch 1 only
            same = same and mb[0]["losses"] == ref["epochs"][0]["losses"][:len(mb[0]["losses"])]
        print(f"losses identical to the all-in-memory run, bit for bit: {same}")
    res["identical_losses"] = same
    checks: dict[str, Any] = {}
    pk = runs.get("packed")
    if pk:
        amps = [e["stats"]["disk"]["amplification"] for e in pk["epochs"]]
        checks["packed_amplification"] = {"value": max(amps), "target": TARGET_AMPLIFICATION,
                                          "met": max(amps) <= TARGET_AMPLIFICATION}
        tput = min(e["stats"]["disk"]["read_GBps"] for e in pk["epochs"])
        checks["packed_read_throughput_share"] = {"value": tput / res["sequential_GBps"], "target": TARGET_THROUGHPUT,
                                                  "met": tput / res["sequential_GBps"] >= TARGET_THROUGHPUT}
        for p in pk["packing"]:
            if p.get("built"):
                when = (f"during epoch {p['epoch'] - 1} (its start waited {p.get('wait_s', 0.0):.1f} s)"
                        if p.get("ahead") else "before it")
                print(f"packing epoch {p['epoch']} {when}: plan {p['plan_s']:.1f} s + write {p['pack_s']:.1f} s, "
                      f"{format_bytes(p['file_bytes'])} on disk ({p['packed_rows']} rows), read "
                      f"{format_bytes(p['pack_read_bytes'])} from the feature file")
        t_pk = _mean([e.get("train_s", e["seconds"]) for e in pk["epochs"]])
        t_pk_all = _mean([e["seconds"] for e in pk["epochs"]])
        if ref:
            t_ref = _mean([e["seconds"] for e in ref["epochs"]])
            ratio = t_pk / t_ref
            steady = [e["seconds"] for e in pk["epochs"] if e.get("packed_ahead")]
            checks["packed_epoch_vs_memory"] = {"value": ratio, "with_packing": t_pk_all / t_ref,
                                                "memory_epoch_s": t_ref, "memory_runs": 1 + (MEMORY_AGAIN in runs),
                                                "steady": _mean(steady) / t_ref if steady else None,
                                                "target": TARGET_EPOCH_RATIO, "met": bool(ratio <= TARGET_EPOCH_RATIO)}
        mm = runs.get("memmap")
        if mm:
            t_mm = _mean([e["seconds"] for e in mm["epochs"]])
            speedup = t_mm / t_pk
            checks["packed_vs_memmap_speedup"] = {"value": speedup, "with_packing": t_mm / t_pk_all,
                                                  "target": TARGET_VS_MEMMAP, "met": bool(speedup >= TARGET_VS_MEMMAP)}
        mb = runs.get("memmap-budget", {}).get("epochs")
        if mb and mb[0].get("epoch_estimate_s"):
            est = mb[0]["epoch_estimate_s"] if mb[0].get("timed_out") else mb[0]["seconds"]
            checks["packed_vs_memmap_budget_speedup"] = {
                "value": est / t_pk, "with_packing": est / t_pk_all, "lower_bound": mb[0]["seconds"] / t_pk_all,
                "target": TARGET_VS_MEMMAP, "met": bool(est / t_pk >= TARGET_VS_MEMMAP),
                "note": "memmap held to the memory budget (cgroup); its epoch extrapolated from "
                        f"{len(mb[0]['losses'])} steps" if mb[0].get("timed_out") else "a whole epoch"}
        base = res["base_rss"]
        checks["packed_peak_rss_over_base"] = {"value": pk["peak_rss"] - base, "budget": res["memory_budget"],
                                               "met": pk["peak_rss"] - base <= res["memory_budget"]}
    print(f"sequential O_DIRECT bandwidth of the file: {res['sequential_GBps']:.2f} GB/s; RSS before the stores "
          f"(graph, sampler, model): {res['base_rss'] / 1e9:.2f} GB")
    for k, v in checks.items():
        print(f"{k}: {v}")
    res["checks"] = checks


def _budget_row(r: dict[str, Any]) -> None:
    """The table row of the memmap-budget run (epoch 1, possibly cut at its time limit)."""
    if "skipped" in r:
        print(f"| memmap-budget | - | skipped: {r['skipped']} | | | | | | | |")
        return
    e = r["epochs"][0]
    done = len(e["losses"])
    sec = (f"~{e['epoch_estimate_s']:.0f} ({done} steps in {e['seconds']:.1f})" if e.get("timed_out") and done
           else f"> {e['seconds']:.0f} (0 steps)" if e.get("timed_out") else f"{e['seconds']:.1f}")
    amp = f"{e['amplification']:.2f}" if e.get("amplification") else "-"
    print(f"| memmap-budget | 1 | {sec} | {e['compute_s']:.1f} | {e['seconds'] - e['compute_s']:.1f} | "
          f"{e['read_bytes'] / 1e9:.2f} | {amp} | - | - | {r['peak_rss'] / 1e9:.2f} (cgroup peak "
          f"{(r.get('cgroup_peak') or 0) / 1e9:.2f}) |")


def _mean(xs: list[float]) -> float:
    return float(sum(xs) / len(xs))


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark's options (shared by ``gnnsys bench disk``)."""
    p.add_argument("--quick", action="store_true", help="a 20k-node graph, 256-d, a 16 MB budget: seconds")
    add_graph_arguments(p, num_nodes=2_000_000, avg_degree=20.0, dim=768)
    p.add_argument("--coverage", type=float, default=5.0, help="pre-sampling coverage (normalization and C_v)")
    p.add_argument("--memory-budget", default="2GB", help="feature memory: cache tier + staging + batch buffers")
    p.add_argument("--policy", default="static-saint", help="the cache tier's static policy")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--warmup-steps", type=int, default=8, help="untimed training steps before the configurations")
    p.add_argument("--queue-depth", type=int, default=8, help="reads in flight")
    p.add_argument("--modes", default=None,
                   help=f"comma-separated, of {','.join(MODES)} (default: all; --quick: all but memmap-budget)")
    p.add_argument("--no-bracket", action="store_true",
                   help="run the all-in-memory reference once, last (default: first and again last, the epoch "
                        "ratio against the mean of both)")
    p.add_argument("--memmap-budget-seconds", type=float, default=180.0,
                   help="time limit of the memmap-budget run (it thrashes: its epoch is extrapolated)")
    p.add_argument("--feature-file", default=None, help="default: <cache dir>/bench_disk/x_n<N>_d<D>.npy")
    p.add_argument("--cache-dir", default=None, help="graph, feature file and packed files (default $GNNSYS_CACHE)")
    p.add_argument("--json", default=None, help="write the results here (per-step losses included)")


def main(args: argparse.Namespace | list[str] | None = None) -> dict[str, Any]:
    if not isinstance(args, argparse.Namespace):
        p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        add_arguments(p)
        args = p.parse_args(args)
    res = run(args)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2, default=float))
    return res


if __name__ == "__main__":
    main()
