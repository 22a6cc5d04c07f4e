"""Checkpoint files and output paths under faults (issue 17 items 1 and 8): torn or foreign
newest checkpoints, another config, --resume without a checkpoint, atomic writes, and
unwritable --out / --save-model / --checkpoint-dir caught before the first epoch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from gnnsys import checkpoint as ckpt
from gnnsys import paths
from gnnsys.api import train
from gnnsys.checkpoint import CheckpointWarning, TrainerCheckpoint
from gnnsys.cli import main
from gnnsys.errors import CheckpointError, ConfigError, OutputPathError

KW = dict(epochs=4, hidden=16, quiet=True)


class Stop(Exception):
    pass


def cut_after(step: int):
    """Make training stop (raise ``Stop``) right after the run's epoch ``step`` was handed to
    the checkpointer: the in-process stand-in for a crash."""
    orig = TrainerCheckpoint.epoch_done

    def epoch_done(self, collect, finished=False):
        orig(self, collect, finished)
        if self.run.step == step:
            raise Stop

    return orig, epoch_done


def crashed_run(tmp_path: Path, step: int = 3, **kw) -> Path:
    d = tmp_path / "ck"
    orig, patched = cut_after(step)
    TrainerCheckpoint.epoch_done = patched
    try:
        with pytest.raises(Stop):
            train(**KW, checkpoint_dir=str(d), **kw)
    finally:
        TrainerCheckpoint.epoch_done = orig
    return d


def test_newest_and_previous_are_kept(tmp_path):
    d = crashed_run(tmp_path)
    assert sorted(p.name for p in d.iterdir()) == ["ckpt-00000002.pt", "ckpt-00000003.pt"]


@pytest.mark.parametrize("damage", ["truncate", "foreign"])
def test_torn_or_foreign_newest_falls_back_to_previous(tmp_path, damage):
    ref = train(**KW)
    d = crashed_run(tmp_path)
    newest = d / "ckpt-00000003.pt"
    if damage == "truncate":
        newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    else:
        torch.save({"something": torch.ones(3)}, newest)
    with pytest.warns(CheckpointWarning, match=r"ckpt-00000003\.pt.*falling back to ckpt-00000002\.pt"):
        res = train(**KW, checkpoint_dir=str(d), resume="latest")
    # resumed from epoch 2: epochs 3 and 4 redone, same result as never stopping
    assert (res["val"], res["test"]) == (ref["val"], ref["test"])
    assert res["runs"][0]["history"] == ref["runs"][0]["history"]


def test_no_usable_checkpoint_is_an_error(tmp_path):
    d = crashed_run(tmp_path)
    for p in d.iterdir():
        p.write_bytes(b"not a checkpoint")
    with pytest.warns(CheckpointWarning), pytest.raises(CheckpointError, match="no usable checkpoint"):
        train(**KW, checkpoint_dir=str(d), resume="latest")


def test_checkpoint_of_another_config_is_a_clear_error(tmp_path):
    d = crashed_run(tmp_path)
    with pytest.raises(CheckpointError, match=r"another configuration.*--lr: checkpoint 0\.01, now 0\.05"):
        train(**KW, checkpoint_dir=str(d), resume="latest", lr=0.05)
    with pytest.raises(CheckpointError, match="already holds checkpoints"):  # never a silent fresh start
        train(**KW, checkpoint_dir=str(d))


def test_resume_without_checkpoint(tmp_path, capsys):
    d = tmp_path / "empty"
    with pytest.raises(CheckpointError, match="no checkpoint in .*empty to resume from"):
        train(**KW, checkpoint_dir=str(d), resume="latest")
    res = train(**KW, checkpoint_dir=str(d), resume="auto")
    assert "starting fresh (--resume auto)" in capsys.readouterr().err
    assert res["epochs"] == 4 and (d / "ckpt-00000004.pt").exists()
    with pytest.raises(ConfigError, match="add --checkpoint-dir"):
        train(**KW, resume="latest")


def test_cli_resume_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "--epochs", "2", "--quiet", "--checkpoint-dir", str(tmp_path / "e"), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gnnsys: error: --resume: no checkpoint")


def test_checkpoint_reads_back_weights_only(tmp_path):
    d = crashed_run(tmp_path, step=1)
    f = next(d.iterdir())
    data = torch.load(f, weights_only=True)  # plain tensors and values only
    assert data["format"] == "gnnsys-checkpoint" and data["step"] == 1
    assert {"python", "numpy", "torch"} <= set(data["rng"])
    assert {"model", "optimizer", "best_state", "since", "history", "loader"} <= set(data["trainer"])


def test_atomic_write_keeps_previous_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "x.bin"
    paths.atomic_write_bytes(target, b"old")

    def fail(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(paths.os, "replace", fail)
    with pytest.raises(OutputPathError, match="previous file, if any, is unchanged"):
        paths.atomic_write_bytes(target, b"new" * 1000)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]  # no temporary left behind


# ------------------------------------------------------------------ unwritable output paths
def _no_training(monkeypatch):
    """Fail the test if any epoch starts (the path checks must come first)."""
    from gnnsys.trainers import backprop

    def fit(*a, **k):
        raise AssertionError("training started before the output paths were checked")

    monkeypatch.setattr(backprop.BackpropTrainer, "fit", fit)


READ_ONLY = "/proc" if os.geteuid() == 0 else None  # root writes anywhere but in procfs


@pytest.mark.parametrize("flag", ["out", "save_model", "checkpoint_dir"])
def test_missing_parent_is_an_error_before_training(tmp_path, monkeypatch, flag):
    _no_training(monkeypatch)
    with pytest.raises(OutputPathError, match=f"--{flag.replace('_', '-')} .*does not exist"):
        train(**KW, **{flag: str(tmp_path / "no" / "such" / "f")})


@pytest.mark.parametrize("flag", ["out", "save_model", "checkpoint_dir"])
def test_read_only_location_is_an_error_before_training(tmp_path, monkeypatch, flag):
    _no_training(monkeypatch)
    where = Path(READ_ONLY) if READ_ONLY else tmp_path / "ro"
    if not READ_ONLY:
        where.mkdir()
        where.chmod(0o500)
    with pytest.raises(OutputPathError, match=f"--{flag.replace('_', '-')} .*cannot create"):
        train(**KW, **{flag: str(where / "gnnsys-test-output")})


@pytest.mark.parametrize("flag", ["out", "save_model", "checkpoint_dir"])
def test_full_disk_is_an_error_before_training(tmp_path, monkeypatch, flag):
    _no_training(monkeypatch)
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(paths.shutil, "disk_usage", lambda p: usage._replace(free=1000))
    with pytest.raises(OutputPathError, match=f"--{flag.replace('_', '-')} .*is full"):
        train(**KW, **{flag: str(tmp_path / "f")})


def test_cli_unwritable_out_is_one_line_exit_2(tmp_path, capsys):
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "missing" / "r.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gnnsys: error: --out ")


def test_checkpoint_every_and_resume_values_are_checked():
    with pytest.raises(ConfigError, match="--checkpoint-every"):
        train(**KW, checkpoint_dir="x", checkpoint_every=0)
    with pytest.raises(ConfigError, match="--resume takes"):
        train(**KW, checkpoint_dir="x", resume="newest")
    with pytest.raises(ConfigError, match="--pipe-train sf"):
        train(**KW, trainer="pipe", pipe_train="sf", save_model="x.pt")


PIPE = dict(KW, trainer="pipe", stages=1, chunks=2, layers=2, pipe_smoothing=0.9, checkpoint_every=2)


def _pipe_cut(step: int):
    from gnnsys.pipeline.ckpt import PipeCheckpoint

    orig = PipeCheckpoint.epoch_done

    def epoch_done(self, collect, finished):
        orig(self, collect, finished)
        if self.ck.run.step == step:
            raise Stop

    return PipeCheckpoint, orig, epoch_done


def _pipe_crashed(tmp_path: Path, step: int, kw: dict | None = None) -> Path:
    cls, orig, cut = _pipe_cut(step)
    cls.epoch_done = cut
    try:
        with pytest.raises(Stop):
            train(**(kw or PIPE), checkpoint_dir=str(tmp_path / "ck"))
    finally:
        cls.epoch_done = orig
    return tmp_path / "ck"


@pytest.mark.parametrize("mode", [{}, {"pipe_train": "sf", "pipe_smoothing": 0.0},
                                  {"parallel": "graph", "pipe_smoothing": 0.0, "chunks": None}],
                         ids=["gnnpipe", "sf", "graph"])
def test_pipe_one_rank_resume_and_a_torn_cut(tmp_path, monkeypatch, mode):
    """In process (one rank): a run cut after epoch 3 resumes from the epoch-2 checkpoint,
    ignoring a half-written epoch-4 rank part that no manifest names, and ends as an
    uninterrupted run; the folder keeps only the parts the kept manifests name.

    DGL's METIS does not give the same partition from call to call within one process, so
    here the chunks are fixed halves of the node ids; the resumed run must not partition at
    all (it reuses the checkpoint's partition)."""
    from gnnsys.pipeline import common

    kw = {**PIPE, **mode}

    monkeypatch.setattr(common, "metis_assignment", lambda g, k: torch.arange(g.num_nodes) * k // g.num_nodes)
    ref = train(**kw)
    ck = _pipe_crashed(tmp_path, 3, kw)
    assert sorted(p.name for p in ck.iterdir()) == ["ckpt-00000002.pt", "pipe-00000002"]
    (ck / "pipe-00000004").mkdir()
    (ck / "pipe-00000004" / "rank-0.pt").write_bytes(b"torn")  # a crash before the manifest
    monkeypatch.setattr(common, "metis_assignment", None)  # resuming must not partition again
    res = train(**kw, checkpoint_dir=str(ck), resume="latest")
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in res["runs"][0]["history"]]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in ref["runs"][0]["history"]]
    assert (res["val"], res["test"]) == (ref["val"], ref["test"])
    assert sorted(p.name for p in ck.iterdir()) == ["ckpt-00000002.pt", "ckpt-00000004.pt", "pipe-00000002",
                                                   "pipe-00000004"]


def test_pipe_checkpoint_refuses_other_chunks_or_stages_and_torn_parts(tmp_path):
    ck = _pipe_crashed(tmp_path, 2)
    with pytest.raises(CheckpointError, match="--chunks: checkpoint 2, now 3"):
        train(**{**PIPE, "chunks": 3}, checkpoint_dir=str(ck), resume="latest")
    with pytest.raises(CheckpointError, match="--stages: checkpoint 1, now 2"):
        train(**{**PIPE, "stages": 2}, checkpoint_dir=str(ck), resume="latest")
    (ck / "pipe-00000002" / "rank-0.pt").write_bytes(b"torn")
    with pytest.raises(CheckpointError, match="rank 0's part of the checkpoint cannot be read back"):
        train(**PIPE, checkpoint_dir=str(ck), resume="latest")


def test_fingerprint_ignores_run_options():
    base = {"lr": 0.01, "out": "a.json", "quiet": True, "checkpoint_every": 2}
    other = {"lr": 0.01, "out": "b.json", "quiet": False, "checkpoint_every": 5}
    assert ckpt.run_fingerprint(base, {"n": 1}) == ckpt.run_fingerprint(other, {"n": 1})
    assert ckpt.run_fingerprint(base, {"n": 1}) != ckpt.run_fingerprint({**base, "lr": 0.1}, {"n": 1})


def test_atomic_write_gives_a_normal_file_mode(tmp_path):
    target = tmp_path / "r.json"
    paths.atomic_write_bytes(target, b"{}")
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask  # as open() would, not mkstemp's 0600
    target.chmod(0o640)
    paths.atomic_write_bytes(target, b"{ }")
    assert target.stat().st_mode & 0o777 == 0o640  # a replaced file keeps its mode
