"""What checkpoints cost: the time of one checkpoint write (serialize + temporary file +
fsync + rename) and its size, during real training runs, and the run's time with and
without checkpoints.

    python -m gnnsys.experiments.bench_checkpoint                          # Cora GCN, 30 epochs
    python -m gnnsys.experiments.bench_checkpoint --dataset ogbl-ddi --epochs 2

Timings are wall-clock on this machine; on a shared one they are noisy.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from typing import Any


def measure(dataset: str, epochs: int, **kw: Any) -> dict[str, Any]:
    """Train ``dataset`` once without and once with a checkpoint every epoch; the write times."""
    import gnnsys.checkpoint as ckpt
    from gnnsys.api import train

    writes: list[tuple[float, int]] = []
    orig = ckpt.Checkpointer.save

    def timed(self, *a, **k):
        t = time.perf_counter()
        path = orig(self, *a, **k)
        writes.append((time.perf_counter() - t, path.stat().st_size))
        return path

    t = time.perf_counter()
    plain = train(dataset=dataset, epochs=epochs, quiet=True, **kw)
    t_plain = time.perf_counter() - t
    folder = tempfile.mkdtemp(prefix="gnnsys-bench-ckpt-")
    ckpt.Checkpointer.save = timed
    try:
        t = time.perf_counter()
        with_ck = train(dataset=dataset, epochs=epochs, quiet=True, checkpoint_dir=folder, **kw)
        t_ck = time.perf_counter() - t
    finally:
        ckpt.Checkpointer.save = orig
        shutil.rmtree(folder, ignore_errors=True)
    return {"dataset": dataset, "epochs": epochs, "checkpoints": len(writes),
            "write_ms_median": 1000 * statistics.median(w for w, _ in writes),
            "checkpoint_mb": writes[-1][1] / 1e6, "run_s_without": t_plain, "run_s_with": t_ck,
            "same_result": (plain["val"], plain["test"]) == (with_ck["val"], with_ck["test"])}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line: ``--dataset``, ``--epochs``, ``--out``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="cora")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--out", default=None, help="write the figures as JSON")
    args = p.parse_args(argv)
    res = measure(args.dataset, args.epochs)
    print(f"{res['dataset']}: {res['checkpoints']} checkpoints of {res['checkpoint_mb']:.2f} MB, "
          f"{res['write_ms_median']:.1f} ms each (median); run {res['run_s_without']:.1f}s without, "
          f"{res['run_s_with']:.1f}s with; same result: {res['same_result']}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=2)
    return res


if __name__ == "__main__":
    main()
