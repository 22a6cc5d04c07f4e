"""Saved models, ``gnnsys evaluate`` and ``gnnsys predict`` (issue 17 item 2 and its faults)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gnnsys import InMemoryFeatureStore, load_dataset
from gnnsys.api import evaluate, load_model, predict, train
from gnnsys.cli import main
from gnnsys.config import TrainConfig
from gnnsys.errors import ModelFileError
from gnnsys.metrics import accuracy

KW = dict(epochs=3, hidden=16, quiet=True)


def _trained(tmp_path: Path, name: str = "m.pt", **kw) -> tuple[dict, Path]:
    path = tmp_path / name
    res = train(**{**KW, **kw}, save_model=str(path))
    assert res["saved_model"] == str(path)
    return res, path


@pytest.mark.parametrize("kw", [
    {},  # backprop, full batch, public split
    {"split": "random", "seed": 3},
    {"sampler": "saint-node", "saint_budget": 600, "saint_coverage": 5, "saint_unseen_edges": "once"},
    {"trainer": "forward", "forward_variant": "ff-la", "layers": 2},
    {"trainer": "forward", "forward_variant": "sf-top2input", "layers": 2},
    {"layer": "gat", "extra": {"layer_kwargs": {"heads": 2}}},
], ids=["backprop", "random-split", "graphsaint", "forward-greedy", "forward-topdown", "gat-layer-args"])
def test_evaluate_reproduces_training_scores_exactly(tmp_path, kw):
    res, path = _trained(tmp_path, **kw)
    ev = evaluate(path)
    assert (ev["val"], ev["test"]) == (res["val"], res["test"])
    assert ev["metric"] == res["metric"] and ev["trained"]["val"] == res["val"]


@pytest.mark.parametrize("kw", [{}, {"parallel": "graph"}], ids=["gnnpipe-stale", "graph-parallel"])
def test_pipe_model_evaluates_single_process(tmp_path, kw):
    """A 2-rank ``--trainer pipe`` run saves an ordinary GNNStack model (rank 0 gathers every
    stage's layers); ``evaluate`` in this process gives the scores the run reported. GNNPipe's
    evaluation is an exact full-graph forward with the current weights (staleness is a
    training-time matter), so they are equal to the bit. The graph-parallel baseline sums its
    partitions' correct counts and divides in float64, while single-process ``accuracy`` is a
    float32 mean: the same fraction, rounded differently (within 1e-7)."""
    data = load_dataset("synthetic-sbm", num_nodes=300, num_classes=3, num_features=16, homophily=0.8,
                        feature_signal=1.0, seed=1)
    path = tmp_path / "pipe.pt"
    res = train(data=data, trainer="pipe", stages=2, layers=3, hidden=16, epochs=4, threads_per_rank=1, quiet=True,
                save_model=str(path), **kw)
    ev = evaluate(path, data=data)
    if kw:
        assert (ev["val"], ev["test"]) == pytest.approx((res["val"], res["test"]), abs=1e-7)
    else:
        assert (ev["val"], ev["test"]) == (res["val"], res["test"])
    assert load_model(path).spec["trainer"] == "pipe"
    assert predict(path, data=data)["prob"].shape == (300, 3)


def test_cross_validated_model_evaluates_every_fold(tmp_path, data_root):
    res, path = _trained(tmp_path, dataset="MUTAG", data_root=str(data_root), folds=2, epochs=2)
    ev = evaluate(path)
    assert [(r["val"], r["test"]) for r in ev["runs"]] == [(r["val"], r["test"]) for r in res["runs"]]
    assert (ev["val"], ev["test"]) == (res["val"], res["test"])
    cols = predict(path, fold=1)
    assert cols["prob"].shape == (188, 2) and np.allclose(cols["prob"].sum(1), 1, atol=1e-6)
    # fold 1's predictions on its own test graphs give the test score evaluate computed
    from gnnsys.api import run_splits

    ds = load_dataset("MUTAG", root=str(data_root))
    split = run_splits(ds, load_model(path).config)[1]
    assert accuracy(torch.as_tensor(cols["prob"])[split["test"]], ds.labels[split["test"]]) == ev["runs"][1]["test"]
    both = predict(path)  # the folds' probabilities averaged
    assert np.allclose(both["prob"], (predict(path, fold=0)["prob"] + cols["prob"]) / 2)


def test_predict_node_classes_agree_with_the_test_score(tmp_path):
    res, path = _trained(tmp_path)
    out = tmp_path / "pred.csv"
    assert main(["predict", "--model", str(path), "--out", str(out)]) == 0
    header = out.read_text().splitlines()[0].split(",")
    assert header[:2] == ["node", "pred"] and header[2:] == [f"prob_{k}" for k in range(5)]
    table = np.loadtxt(out, delimiter=",", skiprows=1)
    ds = load_dataset("synthetic-sbm")
    test = ds.split["test"].numpy()
    pred = table[:, 1].astype(int)
    assert np.array_equal(table[:, 0], np.arange(ds.num_nodes))
    assert np.array_equal(pred, table[:, 2:].argmax(1))
    assert abs((pred[test] == ds.labels.numpy()[test]).mean() - res["test"]) < 1e-6
    npy = tmp_path / "pred.npy"
    predict(path, out=str(npy))
    assert np.allclose(np.load(npy), table, atol=1e-8)


def test_link_model_scores_given_pairs(tmp_path, sbm_link_dataset):
    ds = sbm_link_dataset
    path = tmp_path / "link.pt"
    res = train(TrainConfig(dataset="sbm-link", epochs=3, quiet=True, hidden=16, batch_size=8192,
                            link_head="dot", save_model=str(path)), ds)
    ev = evaluate(path, data=ds)
    assert (ev["val"], ev["test"]) == (res["val"], res["test"])
    pairs = tmp_path / "pairs.csv"
    pos, negs = ds.split["test"][:, :50], ds.split["test_neg"][:, :50]
    both = torch.cat([pos, negs], 1)
    pairs.write_text("src,dst\n" + "\n".join(f"{u},{v}" for u, v in both.T.tolist()))
    cols = predict(path, data=ds, pairs=str(pairs), out=str(tmp_path / "s.npy"))
    assert np.array_equal(cols["src"], both[0].numpy()) and cols["score"].shape == (100,)
    # independent reference: the rebuilt model's embeddings, dot head, sigmoid
    from gnnsys.api import model_for
    from gnnsys.loading import full_batch

    model = model_for(ds, load_model(path).config)
    model.load_state_dict(torch.load(path, weights_only=True)["folds"][0]["weights"])
    model.eval()
    with torch.no_grad():
        h = model.embed(full_batch(ds))
        ref = torch.sigmoid((h[both[0]] * h[both[1]]).sum(-1))
    assert np.allclose(cols["score"], ref.numpy(), atol=1e-6)
    with pytest.raises(ModelFileError, match="pass the node pairs to score with --pairs"):
        predict(path, data=ds)
    bad = tmp_path / "bad.csv"
    bad.write_text("0,99999\n")
    with pytest.raises(Exception, match="node ids must lie in 0..2999"):
        predict(path, data=ds, pairs=str(bad))


def test_graph_model_predictions(tmp_path):
    res, path = _trained(tmp_path, dataset="synthetic-graphs", epochs=2)
    ev = evaluate(path)
    assert (ev["val"], ev["test"]) == (res["val"], res["test"])
    cols = predict(path)
    assert list(cols) == ["graph", "pred", "prob"] and cols["prob"].shape == (200, 2)


# ------------------------------------------------------------------------------- errors
def test_pairs_for_a_node_model_is_an_error(tmp_path):
    _, path = _trained(tmp_path, epochs=1)
    with pytest.raises(ModelFileError, match="trained for the node task.*need a link-prediction model"):
        predict(path, pairs=torch.zeros(2, 3, dtype=torch.long))


def test_files_that_are_not_models(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelFileError, match="junk.pt is not a gnnsys model file"):
        load_model(junk)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}}, other)
    with pytest.raises(ModelFileError, match="other.pt is not a gnnsys model file"):
        load_model(other)
    with pytest.raises(ModelFileError, match="no such file"):
        load_model(tmp_path / "missing.pt")
    ck = tmp_path / "ck"
    train(**KW, checkpoint_dir=str(ck))
    with pytest.raises(ModelFileError, match="training checkpoint, not a saved model"):
        load_model(next(ck.iterdir()))


def test_dataset_of_other_dimensions_names_both(tmp_path):
    _, path = _trained(tmp_path, epochs=1)
    base = load_dataset("synthetic-sbm")
    from dataclasses import replace

    narrow = replace(base, name="narrow-sbm", features=InMemoryFeatureStore(base.features.all()[:, :32]))
    with pytest.raises(ModelFileError, match=r"trained on synthetic-sbm .*64 features.*narrow-sbm .*32 features"):
        evaluate(path, data=narrow)


USER_LAYER = '''
import torch
from torch import nn


class TinyConv(nn.Module):
    """Mean of neighbours, then a linear map."""

    def __init__(self, in_dim, out_dim, scale=1.0):
        super().__init__()
        self.lin = nn.Linear(in_dim, out_dim)
        self.scale = scale

    def forward(self, x, edge_index, edge_weight=None):
        src, dst = edge_index
        agg = torch.zeros_like(x).index_add_(0, dst, x[src])
        deg = torch.zeros(x.size(0)).index_add_(0, dst, torch.ones(dst.numel())).clamp(min=1)
        return self.lin(self.scale * agg / deg[:, None])
'''


def test_user_layer_round_trip_and_missing_file(tmp_path, monkeypatch):
    layer_file = tmp_path / "mylayer.py"
    layer_file.write_text(USER_LAYER)
    monkeypatch.chdir(tmp_path)  # a relative file path; the model stores it absolute
    res, path = _trained(tmp_path, layer="mylayer.py:TinyConv", extra={"layer_kwargs": {"scale": 0.5}})
    spec = load_model(path).spec
    assert spec["layer"] == f"{layer_file}:TinyConv" and spec["layer_source"] == "file"
    assert spec["layer_args"] == {"scale": 0.5} and spec["in_dim"] == 64 and spec["out_dim"] == 5
    ev = evaluate(path)
    assert (ev["val"], ev["test"]) == (res["val"], res["test"])
    layer_file.rename(tmp_path / "moved.py")
    with pytest.raises(ModelFileError, match=r"layer '.*mylayer.py:TinyConv' cannot be rebuilt \(a user layer"):
        evaluate(path)


def test_cli_evaluate_writes_val_and_test(tmp_path, capsys):
    res, path = _trained(tmp_path, epochs=2)
    out = tmp_path / "ev.json"
    assert main(["evaluate", "--model", str(path), "--dataset", "synthetic-sbm", "--out", str(out)]) == 0
    ev = json.loads(out.read_text())
    assert (ev["val"], ev["test"]) == (res["val"], res["test"])
    assert main(["evaluate", "--model", str(tmp_path / "nope.pt")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("gnnsys: error: --model ")
    assert main(["predict", "--model", str(path), "--out", str(tmp_path / "p.txt")]) == 2
    assert "written as .csv or .npy" in capsys.readouterr().err


def test_save_model_with_a_main_module_class_is_refused_before_training():
    from torch import nn

    class Local(nn.Module):
        pass

    with pytest.raises(Exception, match="cannot be imported when the model is loaded"):
        train(**KW, layer=Local, save_model="/tmp/never-written.pt")


@pytest.mark.parametrize("variant", ["forward-ce", "top-down"])
def test_forward_link_model_predictions_give_the_test_score(tmp_path, variant):
    from gnnsys.datasets.splits import link_split
    from gnnsys.metrics import link_metric

    small = load_dataset("synthetic-sbm", num_nodes=300, num_classes=3, num_features=16, homophily=0.8,
                         feature_signal=1.0, seed=1)
    ds = link_split(small, val=0.1, test=0.1, seed=0)
    path = tmp_path / "fl.pt"
    res = train(TrainConfig(dataset=ds.name, trainer="forward", forward_variant=variant, layers=2, epochs=3,
                            hidden=16, batch_size=2048, forward_timesteps=2, quiet=True, save_model=str(path)), ds)
    pos, neg = ds.split["test"], ds.split["test_neg"]
    cols = predict(path, data=ds, pairs=torch.cat([pos, neg], 1))
    score = torch.as_tensor(cols["score"])
    assert link_metric(ds.metric, score[: pos.size(1)], score[pos.size(1):]) == pytest.approx(res["test"], abs=1e-12)
