"""Training and evaluation with features on disk (feature tiering II): ``--features disk`` gives
the loss curve of ``--features memory`` bit for bit; layer-wise inference equals full-batch
inference; the CLI's options and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gnnsys.models import build_model
from gnnsys.storage.budget import parse_bytes
from gnnsys.storage.feature_file import write_feature_file

from gnnsys.api import train
from gnnsys.cli import main as cli_main
from gnnsys.config import TrainConfig
from gnnsys.datasets import load_dataset
from gnnsys.errors import ConfigError
from gnnsys.inference import layerwise_forward
from gnnsys.loading import full_batch, operator_norms


@pytest.fixture(scope="module")
def sbm_file(tmp_path_factory):
    ds = load_dataset("synthetic-sbm")
    path = tmp_path_factory.mktemp("sbm") / "x.npy"
    write_feature_file(path, ds.features.all())
    return ds, path


KW = dict(dataset="synthetic-sbm", epochs=3, sampler="saint-rw", saint_coverage=3, quiet=True, seed=1)


@pytest.fixture(scope="module")
def in_memory():
    return train(TrainConfig(**KW))


@pytest.mark.parametrize("layout,budget", [("packed", "8110KB"), ("rows", "8110KB"), ("packed", "9170KB")])
def test_disk_features_train_bit_identically_to_memory(sbm_file, in_memory, tmp_path, layout, budget):
    """Same losses and scores as in memory (evaluation runs layer-wise, automatically); the
    epoch records carry bytes read and the amplification; the budget split held. With room
    for it (9.17 MB), each epoch's packed file is written during the epoch before."""
    ds, path = sbm_file
    path.chmod(0o444)  # the feature file may be read-only: packed files go to the cache folder
    a = in_memory
    b = train(TrainConfig(features="disk", feature_file=str(path), memory_budget=budget, disk_layout=layout,
                          cache_dir=str(tmp_path), **KW))
    ha, hb = a["runs"][0]["history"], b["runs"][0]["history"]
    assert [r["loss"] for r in ha] == [r["loss"] for r in hb]
    assert abs(a["test"] - b["test"]) < 1e-9 and abs(a["val"] - b["val"]) < 1e-9
    for rec in hb:
        disk = rec["features"]["disk"]
        assert disk["read_bytes"] >= disk["needed_bytes"] > 0 and 0 < rec["features"]["cache"]["hit_rate"] < 1
        assert disk["amplification"] == disk["read_bytes"] / disk["needed_bytes"]
        if layout == "packed":
            assert disk["amplification"] < 1.3
    fs = b["runs"][0]["feature_store"]
    assert fs["budget"]["peak"] <= fs["budget"]["total"] == parse_bytes(budget)
    if layout == "packed":  # the last (stream epoch 2) file: written during the one before when the budget has room
        last = fs["disk"]["packing"]
        assert last["epoch"] == 2 and last["built"] and last["ahead"] == (budget == "9170KB")
    assert (fs["budget"]["pack_ahead"] > 0) == (budget == "9170KB")
    assert list(tmp_path.glob("packed/*.packed")) if layout == "packed" else True
    assert not list(path.parent.glob("*.packed"))
    if layout == "rows":  # --eval full reads the whole file when it fits the budget
        c = train(TrainConfig(features="disk", feature_file=str(path), memory_budget="8110KB", disk_layout=layout,
                              cache_dir=str(tmp_path), eval_mode="full", **KW))
        assert [r["loss"] for r in c["runs"][0]["history"]] == [r["loss"] for r in ha] and c["test"] == a["test"]


@pytest.mark.parametrize("layer", ["gcn", "sage", "gat", "gin"])
def test_layerwise_inference_equals_full_batch(sbm_file, tmp_path, layer):
    """Layer by layer in chunks (intermediates in memory, or spilled to the cache folder)
    equals one full-graph forward pass within 1e-5."""
    ds, _ = sbm_file
    torch.manual_seed(0)
    model = build_model(layer, ds.num_features, 16, ds.num_classes, num_layers=3)
    model.eval()
    with torch.no_grad():
        ref = model(full_batch(ds, operators=operator_norms(model)))
    for chunk, limit in ((257, None), (1000, 0)):  # 0: every intermediate spills to a file
        out = layerwise_forward(model, ds, chunk_nodes=chunk, memory_limit=limit, cache_dir=tmp_path)
        assert out.shape == ref.shape and (out - ref).abs().max().item() < 1e-5
    assert not list((tmp_path / "layerwise").iterdir())  # spills removed


def test_disk_options_are_checked(sbm_file, capsys):
    ds, path = sbm_file
    for bad, match in ((dict(features="disk"), "needs --feature-file"),
                       (dict(feature_file="x.npy"), "needs --features disk"),
                       (dict(features="disk", feature_file="x.npy", memory_budget="2 potatoes",
                             sampler="saint-rw"), "not a size"),
                       (dict(features="disk", feature_file="x.npy", memory_budget="2GB"), "mini-batches"),
                       (dict(eval_mode="sometimes"), "--eval")):
        with pytest.raises(ConfigError, match=match):
            TrainConfig(**bad).validate()
    # a budget below one batch: one error line before training, with the smallest budget that works
    argv = ["train", "--dataset", "synthetic-sbm", "--sampler", "saint-rw", "--saint-coverage", "3", "--epochs", "1",
            "--features", "disk", "--feature-file", str(path), "--memory-budget", "100KB", "--quiet"]
    assert cli_main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith((" ", "/"))]
    assert len(err) == 1 and err[0].startswith("gnnsys: error: memory budget") and "smallest budget" in err[0]
    other = path.parent / "wide.npy"
    np.save(other, np.zeros((ds.num_nodes, 65), np.float32))
    argv[argv.index(str(path))] = str(other)
    argv[argv.index("100KB")] = "12MB"
    assert cli_main(argv) == 2
    assert "65-d" in capsys.readouterr().err


def test_a_consumed_batch_is_freed_before_its_group_ends(sbm_file):
    """The sampler draws batches in groups; a batch the trainer has dropped is freed at once
    (by reference count, no garbage collection), not when its group's last batch is handed
    out: the loading pipeline attaches each batch's feature rows to it, and a group of 8 kept
    alive held 200 MB of rows above the budget in the out-of-core benchmark."""
    import weakref

    from gnnsys.samplers.saint_samplers import SaintRandomWalkSampler

    ds, _ = sbm_file
    s = SaintRandomWalkSampler(ds.graph, 20, 2, seed=0, group_size=4)
    it = iter(s)
    first = next(it)
    first.x = torch.zeros(first.node_ids.numel(), 8)  # as FetchFeatures attaches the rows
    ref = weakref.ref(first)
    del first
    second = next(it)  # same group
    assert ref() is None and second is not None
    assert sum(1 for _ in it) == len(s) - 2


def test_a_failed_run_closes_its_out_of_core_store(sbm_file, tmp_path, monkeypatch):
    """Training that raises stops the store's threads (and a packing pass running ahead)."""
    from gnnsys.storage.out_of_core import OutOfCoreStore

    from gnnsys.trainers.backprop import BackpropTrainer

    ds, path = sbm_file
    closed = []
    real_close = OutOfCoreStore.close
    monkeypatch.setattr(OutOfCoreStore, "close", lambda self: (closed.append(self), real_close(self))[1])

    def boom(self, *a, **kw):
        raise RuntimeError("diverged")

    monkeypatch.setattr(BackpropTrainer, "fit", boom)
    with pytest.raises(RuntimeError, match="diverged"):
        train(TrainConfig(features="disk", feature_file=str(path), memory_budget="9170KB", cache_dir=str(tmp_path),
                          **KW))
    assert len(closed) == 1
