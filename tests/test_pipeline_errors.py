"""Bad input to ``--trainer pipe``: each a ``ConfigError`` naming the problem and the fix."""

from __future__ import annotations

import pytest
import torch

from gnnsys.api import train
from gnnsys.cli import main
from gnnsys.config import TrainConfig
from gnnsys.datasets import load_dataset
from gnnsys.errors import ConfigError
from gnnsys.pipeline.launch import check_backend


def test_more_stages_than_layers():
    with pytest.raises(ConfigError, match=r"--stages 5 > --layers 4.*at least one layer"):
        TrainConfig(trainer="pipe", stages=5, layers=4).validate()


def test_fewer_chunks_than_stages():
    with pytest.raises(ConfigError, match=r"--chunks 2 < --stages 4.*--chunks >= 4"):
        TrainConfig(trainer="pipe", stages=4, chunks=2, layers=8).validate()


def test_pipe_fields_need_pipe_trainer():
    with pytest.raises(ConfigError, match="--stages needs --trainer pipe"):
        TrainConfig(stages=2).validate()


def test_world_size_must_match_stages(monkeypatch):
    ds = load_dataset("synthetic-sbm")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ConfigError, match=r"started 2 processes \(WORLD_SIZE\) but --stages is 3"):
        train(data=ds, trainer="pipe", stages=3, layers=4, epochs=1, quiet=True)


def test_graph_classification_is_refused():
    ds = load_dataset("synthetic-graphs", num_graphs=20)
    with pytest.raises(ConfigError, match="node classification on one full graph.*graph-level task"):
        train(data=ds, trainer="pipe", stages=2, layers=2, epochs=1, quiet=True, folds=2)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has GPUs")
def test_nccl_without_gpus():
    with pytest.raises(ConfigError, match="nccl needs CUDA GPUs"):
        check_backend(TrainConfig(trainer="pipe", backend="nccl", device="cuda"), 2)
    ds = load_dataset("synthetic-sbm")
    with pytest.raises(ConfigError, match="nccl"):
        train(data=ds, trainer="pipe", stages=2, layers=2, epochs=1, backend="nccl", quiet=True)


def test_cli_prints_the_error(capsys):
    assert main(["train", "--trainer", "pipe", "--stages", "3", "--chunks", "2", "--layers", "4", "--quiet"]) == 2
    assert "gnnsys: error: --chunks 2 < --stages 3" in capsys.readouterr().err


def test_bad_smoothing_and_scheme():
    with pytest.raises(ConfigError, match=r"--pipe-smoothing must be in \[0, 1\)"):
        TrainConfig(trainer="pipe", pipe_smoothing=1.0).validate()
    with pytest.raises(ConfigError, match="--pipe-train sf .* needs --parallel layer"):
        TrainConfig(trainer="pipe", parallel="graph", pipe_train="sf").validate()
