"""Quick versions of the foundation benchmark on the real datasets (``experiments/foundation.py``
has the full ones). Thresholds are the foundation issue's targets; the anchors in comments are
the published numbers of the same models."""

import pytest

from gnnsys.api import train
from gnnsys.config import TrainConfig

pytestmark = pytest.mark.slow


def _train(data_root, **kw):
    return train(TrainConfig(data_root=str(data_root), quiet=True, **kw))


def test_cora_gcn(data_root):
    res = _train(data_root, dataset="cora", layer="gcn")
    assert res["test"] >= 0.80  # anchor 0.815


def test_citeseer_gcn(data_root):
    res = _train(data_root, dataset="citeseer", layer="gcn")
    assert res["test"] >= 0.69  # anchor 0.703


def test_mutag_gin_10fold(data_root):
    # 50 of the default 100 epochs (suite time): measured 0.867 over the 10 folds
    res = _train(data_root, dataset="MUTAG", layer="gin", epochs=50)
    assert res["folds"] == 10 and len(res["runs"]) == 10
    assert res["test"] >= 0.85  # anchor 0.894 (GIN paper, selection on the test folds)


def test_molbace_gin_rocauc(data_root):
    # One scaffold-split run varies by several points between seeds (measured 0.69, 0.76, 0.78
    # for seeds 0-2), so the target is on the mean of three seeds. 25 epochs (suite time):
    # measured 0.773 / 0.764 / 0.704, mean 0.747.
    scores = [_train(data_root, dataset="ogbg-molbace", layer="gin", epochs=25, seed=s) for s in range(3)]
    assert all(r["metric"] == "rocauc" for r in scores)
    assert sum(r["test"] for r in scores) / 3 >= 0.70


def test_proteins_gin_cv(data_root):
    # Quick version: 3 of the 10 stratified folds' worth of CV at 30 epochs. The full run
    # (10 folds, 100 epochs; experiments/foundation.py) is what the 0.73 target is held to.
    res = _train(data_root, dataset="PROTEINS", layer="gin", folds=3, epochs=30)
    assert res["folds"] == 3
    assert res["test"] >= 0.70  # anchor 0.762 (GIN paper, selection on the test folds)


def test_ddi_sage_hits20_learns(data_root):
    # Quick version: 2 epochs of SAGE with a dot-product scorer (the default MLP scorer costs
    # about 35 s per epoch on 2 cores and needs tens of epochs; experiments/foundation.py runs
    # it against the 0.40 target). Measured here: val 0.061, test 0.074 after 2 epochs (0.149 /
    # 0.110 after 3). A random scorer has Hits@20 ≈ 20 / 100000 negatives ≈ 0.0002, so 0.03 is
    # 150x chance.
    res = _train(data_root, dataset="ogbl-ddi", epochs=2, link_head="dot")
    assert res["metric"] == "hits@20"
    assert res["val"] >= 0.03 and res["test"] >= 0.03
