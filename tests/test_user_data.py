"""Your own data in (issue 17, item 3): ``Dataset.from_pyg``, ``Dataset.from_dgl`` and
``--dataset pyg:NAME``. Each conversion trains to exactly the result of the same graph loaded
natively (same seed: same losses, same scores)."""

from __future__ import annotations

import shutil

import networkx as nx
import numpy as np
import pytest
import torch

from gnnsys import Dataset, load_dataset
from gnnsys.api import train
from gnnsys.cli import main
from gnnsys.config import TrainConfig
from gnnsys.errors import DataFormatError

pyg_data = pytest.importorskip("torch_geometric.data")
pyg_datasets = pytest.importorskip("torch_geometric.datasets")


def _fit(ds: Dataset, **kw) -> dict:
    cfg = TrainConfig(dataset=ds.name, quiet=True, seed=3, **kw)
    return train(cfg, data=ds)


def _same_training(a: dict, b: dict) -> None:
    ha, hb = a["runs"][0]["history"], b["runs"][0]["history"]
    assert [h["loss"] for h in ha] == [h["loss"] for h in hb]
    assert (a["val"], a["test"]) == (b["val"], b["test"])


def _same_graph(a: Dataset, b: Dataset) -> None:
    assert torch.equal(a.graph.indptr, b.graph.indptr) and torch.equal(a.graph.indices, b.graph.indices)


def test_karate_club_equals_the_networkx_graph():
    """PyG's KarateClub (only a train mask: valid and test share the other nodes) against the
    same club from networkx through the native networkx loader, with the same split."""
    data = pyg_datasets.KarateClub()[0]
    ds = Dataset.from_pyg(pyg_datasets.KarateClub())
    assert ds.task == "node" and ds.num_classes == 4 and ds.num_features == 34
    assert torch.equal(ds.split["train"], data.train_mask.nonzero().view(-1))
    rest = torch.cat([ds.split["valid"], ds.split["test"]]).sort().values
    assert torch.equal(rest, (~data.train_mask).nonzero().view(-1))
    native = load_dataset("networkx", graph=nx.karate_club_graph(), features=np.eye(34, dtype=np.float32),
                          labels=data.y.numpy(), split=ds.split)
    _same_graph(ds, native)
    _same_training(_fit(ds, epochs=15, layer="gcn"), _fit(native, epochs=15, layer="gcn"))


def test_pyg_data_and_dgl_graph_of_cora_train_as_the_native_cora(data_root):
    native = load_dataset("cora", root=data_root)
    n = native.num_nodes
    x, ei = native.features.gather(torch.arange(n)), native.graph.to_edge_index()
    masks = {}
    for key, attr in (("train", "train_mask"), ("valid", "val_mask"), ("test", "test_mask")):
        m = torch.zeros(n, dtype=torch.bool)
        m[native.split[key]] = True
        masks[attr] = m
    # shuffle the edge order: conversion must not depend on it
    perm = torch.randperm(ei.size(1), generator=torch.Generator().manual_seed(0))
    data = pyg_data.Data(x=x, edge_index=ei[:, perm], y=native.labels, **masks)
    from_pyg = Dataset.from_pyg(data, name="cora")
    _same_graph(from_pyg, native)
    ref = _fit(native, epochs=5)
    _same_training(_fit(from_pyg, epochs=5), ref)

    dgl = pytest.importorskip("dgl")
    g = dgl.graph((ei[0, perm], ei[1, perm]), num_nodes=n)
    g.ndata["feat"], g.ndata["label"] = x, native.labels
    for attr, m in masks.items():
        g.ndata[attr] = m
    from_dgl = Dataset.from_dgl(g, name="cora")
    _same_graph(from_dgl, native)
    _same_training(_fit(from_dgl, epochs=5), ref)


def test_tu_dataset_from_pyg_equals_native_mutag(data_root, tmp_path):
    """PyG's TUDataset over a copy of the MUTAG raw files (PyG writes processed files beside
    them) against gnnsys's own TU loader: same union graph, features, labels and CV training."""
    shutil.copytree(data_root / "tu" / "MUTAG" / "raw", tmp_path / "MUTAG" / "raw")
    pyg = pyg_datasets.TUDataset(str(tmp_path), "MUTAG")
    ds = Dataset.from_pyg(pyg, name="MUTAG")
    native = load_dataset("MUTAG", root=data_root)
    assert ds.task == "graph" and ds.num_graphs == native.num_graphs == 188 and ds.split == {}
    _same_graph(ds, native)
    assert torch.equal(ds.graph_ptr, native.graph_ptr) and torch.equal(ds.labels, native.labels)
    assert torch.equal(ds.features.gather(torch.arange(ds.num_nodes)),
                       native.features.gather(torch.arange(native.num_nodes)))
    kw = dict(epochs=1, folds=2, layers=2, hidden=16)
    a, b = _fit(ds, **kw), _fit(native, **kw)
    assert [r["test"] for r in a["runs"]] == [r["test"] for r in b["runs"]]


def test_fake_dataset_of_graphs_collated_and_subset_paths_agree():
    fake = pyg_datasets.FakeDataset(num_graphs=12, avg_num_nodes=10, num_channels=3, num_classes=3,
                                    edge_dim=2)
    whole = Dataset.from_pyg(fake)  # vectorized over the collated storage
    sub = Dataset.from_pyg(fake[torch.arange(12)])  # a subset: collated with Batch
    assert whole.task == "graph" and whole.num_graphs == 12
    _same_graph(whole, sub)
    assert torch.equal(whole.graph_ptr, sub.graph_ptr) and torch.equal(whole.labels, sub.labels)
    assert torch.equal(whole.edge_features, sub.edge_features)
    # per graph: the node range and the edges of graph g are graph g's own
    g = 5
    lo, hi = whole.graph_nodes(g)
    assert hi - lo == fake[g].num_nodes
    ref, got = torch.zeros(hi - lo, hi - lo, dtype=torch.bool), torch.zeros(hi - lo, hi - lo, dtype=torch.bool)
    ref[fake[g].edge_index[0], fake[g].edge_index[1]] = True
    sg, _ = whole.graph.subgraph(torch.arange(lo, hi))
    got[sg.to_edge_index()[0], sg.to_edge_index()[1]] = True
    assert torch.equal(ref, got) and int(whole.graph.indptr[hi] - whole.graph.indptr[lo]) == sg.num_edges
    res = _fit(whole, epochs=2, folds=2, layers=2, hidden=8)
    assert res["folds"] == 2


def test_random_link_split_triple():
    from torch_geometric.transforms import RandomLinkSplit

    data = pyg_datasets.KarateClub()[0]
    train_d, val_d, test_d = RandomLinkSplit(num_val=0.1, num_test=0.2, is_undirected=True)(data)
    ds = Dataset.from_pyg((train_d, val_d, test_d))
    assert ds.task == "link" and ds.metric == "rocauc"
    assert torch.equal(ds.split["test"], test_d.edge_label_index[:, test_d.edge_label == 1])
    assert torch.equal(ds.split["valid_neg"], val_d.edge_label_index[:, val_d.edge_label == 0])
    assert ds.graph.num_edges == train_d.edge_index.size(1)
    res = _fit(ds, epochs=3, hidden=16, batch_size=64)
    assert 0.0 <= res["test"] <= 1.0


def test_bad_pyg_data_is_a_clear_error():
    ei = torch.tensor([[0, 1, 2], [1, 2, 0]])
    with pytest.raises(DataFormatError, match=r"no labels \(y is missing\)"):
        Dataset.from_pyg(pyg_data.Data(x=torch.ones(3, 2), edge_index=ei))
    with pytest.raises(DataFormatError, match="train_mask has length 5 but the graph has 3 nodes"):
        Dataset.from_pyg(pyg_data.Data(x=torch.ones(3, 2), edge_index=ei, y=torch.tensor([0, 1, 0]),
                                       train_mask=torch.ones(5, dtype=torch.bool)))
    with pytest.raises(DataFormatError, match="2 labels for 3 nodes"):
        Dataset.from_pyg(pyg_data.Data(x=torch.ones(3, 2), edge_index=ei, y=torch.tensor([0, 1])))
    with pytest.raises(DataFormatError, match="node ids"):
        Dataset.from_pyg(pyg_data.Data(x=torch.ones(3, 2), edge_index=ei + 1, y=torch.tensor([0, 1, 0])))
    with pytest.raises(DataFormatError, match="takes a torch_geometric Data"):
        Dataset.from_pyg({"x": 1})


def test_dataset_pyg_name_on_the_cli(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("GNNSYS_CACHE", str(tmp_path))
    assert main(["train", "--dataset", "pyg:KarateClub", "--epochs", "3", "--quiet"]) == 0
    assert "pyg:KarateClub (node" in capsys.readouterr().out
    for spec, msg in (("pyg:NoSuchSet", "unknown PyG dataset class 'NoSuchSet'"),
                      ("pyg:Planetoid", "needs a name: use pyg:Planetoid/SUBSET"),
                      ("pyg:KarateClub/x", "takes no name")):
        assert main(["train", "--dataset", spec, "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("gnnsys: error:") and msg in err[0], err


def test_data_with_an_edge_split_is_a_link_task():
    import warnings

    from torch_geometric.utils import train_test_split_edges

    data = pyg_datasets.KarateClub()[0]
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = train_test_split_edges(data.clone(), val_ratio=0.1, test_ratio=0.2)
    ds = Dataset.from_pyg(data)
    assert ds.task == "link" and torch.equal(ds.split["test_neg"], data.test_neg_edge_index)
    # message passing over both directions of every training edge, nothing else
    want = set(map(tuple, torch.cat([data.train_pos_edge_index, data.train_pos_edge_index.flip(0)], 1).t().tolist()))
    assert ds.graph.num_edges == len(want) and set(map(tuple, ds.graph.to_edge_index().t().tolist())) == want
    incomplete = pyg_data.Data(x=data.x, edge_index=data.train_pos_edge_index,
                               train_pos_edge_index=data.train_pos_edge_index)
    with pytest.raises(DataFormatError, match="val_pos_edge_index"):
        Dataset.from_pyg(incomplete)
