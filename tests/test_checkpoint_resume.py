"""Checkpoints and resume (issue 17 item 1): a training subprocess SIGKILLed at a random epoch
and resumed ends with the same metrics and weights, bit for bit, as an uninterrupted run.

The child is a real ``python`` process running ``gnnsys train``; a wrapper around
``TrainerCheckpoint.epoch_done`` (test code, not the engine's) sends it SIGKILL right after
epoch ``k`` of the run. With ``--checkpoint-every 2`` and odd ``k`` the newest checkpoint is one
epoch behind the kill, so the resumed run also redoes work the killed one had done.
The reference and the resumed run run in this process (the CLI entry point)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gnnsys.cli import main

CHILD = r"""
import os, signal, sys
from gnnsys.checkpoint import TrainerCheckpoint
from gnnsys.cli import main

kill_at = int(sys.argv[1])
orig = TrainerCheckpoint.epoch_done

def epoch_done(self, collect, finished=False):
    orig(self, collect, finished)
    if self.run.step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

TrainerCheckpoint.epoch_done = epoch_done
sys.exit(main(sys.argv[2:]))
"""


#: For ``--trainer pipe`` the ranks are spawned processes that do not run ``CHILD``; a
#: ``sitecustomize`` on ``PYTHONPATH`` (test code, loaded by every process of the child run)
#: patches ``PipeCheckpoint.epoch_done`` there, and rank 0 SIGKILLs the whole process group
#: (the ``gnnsys train`` process and every rank) right after epoch ``k`` of the run.
PIPE_SITE = r"""
import os
if os.environ.get("GNNSYS_TEST_KILL_AT"):
    import signal
    from gnnsys.pipeline.ckpt import PipeCheckpoint

    _kill_at, _orig = int(os.environ["GNNSYS_TEST_KILL_AT"]), PipeCheckpoint.epoch_done

    def _epoch_done(self, collect, finished):
        _orig(self, collect, finished)
        if self.ck is not None and self.ck.run.step == _kill_at and self.comm.rank == 0:
            os.killpg(os.getpgid(0), signal.SIGKILL)

    PipeCheckpoint.epoch_done = _epoch_done
"""


def _weights(path: Path) -> list[dict[str, torch.Tensor]]:
    d = torch.load(path, weights_only=True)
    return [f["weights"] for f in d["folds"]]


def _same_tensors(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_tensors(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same_tensors(x, y) for x, y in zip(a, b))
    return a == b


#: Timings in a pipe run's record (``runs[i]["pipe"]``).
PIPE_TIMINGS = ("bubble", "epoch_seconds")


def _record(path: Path) -> dict:
    """The result JSON without what legitimately differs (timings, paths, the run options; for
    the pipe trainer its measured bubble and the checkpoint barrier's bytes)."""
    r = json.loads(path.read_text())
    for k in ("seconds", "config", "saved_model"):
        r.pop(k, None)
    for run in r["runs"]:
        run.pop("seconds", None)
        for h in run["history"] if "pipe" in run else ():
            h.pop("seconds", None)
        for k in PIPE_TIMINGS:
            run.get("pipe", {}).pop(k, None)
        run.get("pipe", {}).get("bytes_rank0", {}).pop("checkpoint", None)
    return r


def kill_and_resume(tmp_path: Path, args: list[str], total_epochs: int, every: int = 2, pipe: bool = False) -> int:
    """Run ``args`` uninterrupted, then killed at a random epoch and resumed; assert both end
    the same. Returns the epoch of the kill. ``pipe``: a ``--trainer pipe`` run, whose ranks
    are killed with it (``PIPE_SITE``)."""
    # a random epoch after the first checkpoint and before the last epoch (a kill before the
    # first checkpoint leaves nothing to resume: --resume then fails, tested elsewhere)
    kill_at = random.Random().randrange(every, total_epochs)
    ref_out, ref_model = tmp_path / "ref.json", tmp_path / "ref.pt"
    ck, out, model = tmp_path / "ck", tmp_path / "res.json", tmp_path / "res.pt"
    run = [*args, "--quiet", "--checkpoint-dir", str(ck), "--checkpoint-every", str(every), "--out", str(out),
           "--save-model", str(model)]
    # the child starts first: its imports overlap the reference run here
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    cmd = [sys.executable, "-c", CHILD, str(kill_at + 10**6), *run] if pipe else \
        [sys.executable, "-c", CHILD, str(kill_at), *run]
    if pipe:
        site = tmp_path / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(PIPE_SITE)
        env.update(GNNSYS_TEST_KILL_AT=str(kill_at),
                   PYTHONPATH=os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])]))
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                             start_new_session=pipe)
    try:
        assert main([*args, "--quiet", "--out", str(ref_out), "--save-model", str(ref_model)]) == 0
        _, err = child.communicate(timeout=300)
    finally:
        if child.poll() is None:
            if pipe:
                os.killpg(child.pid, signal.SIGKILL)
            child.kill()
    assert child.returncode == -signal.SIGKILL, (kill_at, child.returncode, err[-2000:])
    assert not out.exists() and not model.exists()  # it died before the end
    assert main([*run, "--resume"]) == 0
    assert _record(out) == _record(ref_out), f"killed after epoch {kill_at}"
    assert _same_tensors(_weights(model), _weights(ref_model)), f"killed after epoch {kill_at}"
    return kill_at


def test_backprop_full_batch_resumes_bit_for_bit(tmp_path):
    kill_and_resume(tmp_path, ["train", "--epochs", "6", "--hidden", "16"], 6)


def test_graphsaint_resumes_bit_for_bit(tmp_path):
    args = ["train", "--epochs", "5", "--sampler", "saint-rw", "--saint-roots", "150", "--saint-walk-length", "2",
            "--saint-coverage", "5", "--saint-unseen-edges", "once", "--hidden", "16"]
    # run epochs: 5 (GraphSAINT epochs of several subgraphs each)
    kill_and_resume(tmp_path, args, 5)


def test_forward_variant_resumes_bit_for_bit(tmp_path):
    # greedy ForwardGNN, 2 layers x 3 epochs: the kill lands in the first or the second layer
    args = ["train", "--trainer", "forward", "--forward-variant", "ff-la", "--layers", "2", "--epochs", "3",
            "--hidden", "32"]
    kill_and_resume(tmp_path, args, 6)


def test_tu_cross_validation_resumes_bit_for_bit(tmp_path, data_root):
    # MUTAG, 3 folds x 2 epochs: the kill lands in any fold; finished folds come from the checkpoint
    args = ["train", "--dataset", "MUTAG", "--data-root", str(data_root), "--folds", "3", "--epochs", "2",
            "--hidden", "16"]
    kill_and_resume(tmp_path, args, 6)


def test_pipe_resumes_bit_for_bit(tmp_path):
    """GNNPipe (2 spawned ranks, stale historical embeddings with smoothing, dropout): every
    rank's part of the checkpoint (layers, optimizer, history buffers, RNG) is restored."""
    args = ["train", "--trainer", "pipe", "--stages", "2", "--chunks", "3", "--layers", "3", "--hidden", "16",
            "--epochs", "6", "--pipe-smoothing", "0.9", "--pipe-warmup", "1", "--threads-per-rank", "1"]
    kill_and_resume(tmp_path, args, 6, pipe=True)


@pytest.fixture(scope="module")
def small():
    from gnnsys.datasets import load_dataset

    return load_dataset("synthetic-sbm", num_nodes=300, num_classes=3, num_features=16, homophily=0.8,
                        feature_signal=1.0, seed=1)


@pytest.fixture(scope="module")
def small_link(small):
    from gnnsys.datasets.splits import link_split

    return link_split(small, val=0.1, test=0.1, seed=0)


IN_PROCESS = {
    "forward-topdown-node": ("small", dict(trainer="forward", forward_variant="sf-top2input", layers=2, epochs=4,
                                           hidden=16)),
    "forward-greedy-link": ("small_link", dict(trainer="forward", forward_variant="forward-ce", layers=2, epochs=3,
                                               batch_size=2048, hidden=16)),
    "forward-topdown-link": ("small_link", dict(trainer="forward", forward_variant="top-down", layers=2, epochs=4,
                                                batch_size=2048, forward_timesteps=2, hidden=16)),
    "backprop-link": ("small_link", dict(epochs=4, batch_size=1024, hidden=16)),
    # the tiered feature store's cache is not checkpointed: it re-warms, the results do not change
    "graphsaint-tiered": ("small", dict(epochs=4, hidden=16, sampler="saint-node", saint_budget=100,
                                        saint_coverage=5, saint_unseen_edges="once", features="tiered",
                                        cache_fraction=0.2)),
}


@pytest.fixture
def one_thread():
    """The ForwardGNN link variants are not bit-reproducible from run to run with several
    intra-op threads even uninterrupted (a parallel reduction in their layer's kernels); with
    one thread they are, so that the comparison tests the checkpoints alone."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("case", list(IN_PROCESS))
def test_other_trainers_resume_in_process(tmp_path, case, request, one_thread):
    """The top-down ForwardGNN state (every layer, optimizers, global node states), the greedy
    link variants' layer stack, and backprop link training (pair shuffling and negatives) resume
    bit for bit too (in process: the run is cut by an exception right after a checkpoint)."""
    from gnnsys.api import evaluate, train
    from gnnsys.checkpoint import TrainerCheckpoint
    from gnnsys.config import TrainConfig

    fixture, kw = IN_PROCESS[case]
    data = request.getfixturevalue(fixture)
    cfg = TrainConfig(dataset=data.name, quiet=True, **kw)
    ref = train(cfg, data, save_model=str(tmp_path / "ref.pt"))

    class Stop(Exception):
        pass

    orig = TrainerCheckpoint.epoch_done

    def cut(self, collect, finished=False):
        orig(self, collect, finished)
        if self.run.step == 2:
            raise Stop

    TrainerCheckpoint.epoch_done = cut
    try:
        with pytest.raises(Stop):
            train(cfg, data, checkpoint_dir=str(tmp_path / "ck"))
    finally:
        TrainerCheckpoint.epoch_done = orig
    res = train(cfg, data, checkpoint_dir=str(tmp_path / "ck"), resume="latest", save_model=str(tmp_path / "res.pt"))
    assert (res["val"], res["test"]) == (ref["val"], ref["test"])
    def strip(runs):  # timings, and the feature store's traffic counters (its cache re-warms on resume)
        out = [{k: v for k, v in r.items() if k not in ("seconds", "feature_store")} for r in runs]
        return [{**r, "history": [{k: v for k, v in e.items() if k != "features"} for e in r["history"]]}
                for r in out]

    assert strip(res["runs"]) == strip(ref["runs"])
    assert _same_tensors(_weights(tmp_path / "res.pt"), _weights(tmp_path / "ref.pt"))
    ev = evaluate(tmp_path / "res.pt", data=data)  # and the saved model reproduces the scores
    assert (ev["val"], ev["test"]) == (ref["val"], ref["test"])
