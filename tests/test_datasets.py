"""Real dataset loaders checked against independent references: published counts, PyG's and
OGB's own readers, networkx computations on the raw files."""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import torch

from gnnsys.datasets import (
    from_networkx_dataset,
    link_split,
    load_dataset,
    random_node_split,
    stratified_kfold,
    write_ogbn_raw,
)
from gnnsys.graph import Graph


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep a user's download cache out of the tests and never download."""
    monkeypatch.setenv("GNNSYS_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("GNNSYS_NO_DOWNLOAD", "1")


def edge_set(ei: torch.Tensor, n: int) -> torch.Tensor:
    return torch.unique(ei[0].long() * n + ei[1].long())


def assert_simple_undirected(g: Graph) -> None:
    ei = g.to_edge_index()
    assert g.is_symmetric()
    assert not bool((ei[0] == ei[1]).any()), "self loops"
    assert edge_set(ei, g.num_nodes).numel() == g.num_edges, "duplicate edges"


# ----------------------------------------------------------------------------- Planetoid
@pytest.mark.parametrize(
    "name,nodes,edges,feats,classes,train",
    [("cora", 2708, 10556, 1433, 7, 140), ("CiteSeer", 3327, 9104, 3703, 6, 120)],
)
def test_planetoid_counts(data_root, name, nodes, edges, feats, classes, train):
    d = load_dataset(name, data_root)
    assert (d.num_nodes, d.graph.num_edges, d.num_features, d.num_classes) == (nodes, edges, feats, classes)
    assert (d.task, d.metric, d.target_type) == ("node", "acc", "multiclass")
    assert [d.split[k].numel() for k in ("train", "valid", "test")] == [train, 500, 1000]
    assert torch.equal(d.split["train"], torch.arange(train))
    assert_simple_undirected(d.graph)
    x = d.features.all()
    sums = x.sum(1)
    assert torch.allclose(sums[sums > 0], torch.ones(int((sums > 0).sum())), atol=1e-5)  # normalized


def test_planetoid_matches_pyg_reader(data_root):
    from torch_geometric.io import read_planetoid_data

    d = load_dataset("cora", data_root, normalize_features=False)
    ref = read_planetoid_data(str(data_root / "planetoid" / "raw"), "cora")
    assert torch.equal(d.features.all(), ref.x)
    assert torch.equal(d.labels, ref.y)
    assert torch.equal(edge_set(d.graph.to_edge_index(), 2708), edge_set(ref.edge_index, 2708))
    assert torch.equal(d.split["test"], ref.test_mask.nonzero().flatten())
    assert torch.equal(d.split["valid"], ref.val_mask.nonzero().flatten())


def test_planetoid_pyg_layout(data_root, tmp_path):
    """``<root>/Cora/raw/`` (PyG's layout) is accepted too."""
    raw = tmp_path / "Cora" / "raw"
    raw.mkdir(parents=True)
    for f in (data_root / "planetoid" / "raw").glob("ind.cora.*"):
        (raw / f.name).write_bytes(f.read_bytes())
    assert load_dataset("Cora", tmp_path).num_nodes == 2708


# ---------------------------------------------------------------------------------- TU
TU_COUNTS = {  # graphs, nodes, classes (TU collection statistics)
    "MUTAG": (188, 3371, 2), "PROTEINS": (1113, 43471, 2), "ENZYMES": (600, 19580, 6),
    "NCI1": (4110, 122747, 2), "IMDB-BINARY": (1000, 19773, 2),
}


def nx_reference(folder: Path, name: str) -> tuple[nx.Graph, list[int]]:
    """The union graph built with plain Python + networkx from the raw TU files."""
    g = nx.Graph()
    with open(folder / f"{name}_graph_indicator.txt") as f:
        ind = [int(line) for line in f if line.strip()]
    g.add_nodes_from(range(len(ind)))
    with open(folder / f"{name}_A.txt") as f:
        pairs = [tuple(int(t) - 1 for t in line.split(",")) for line in f if line.strip()]
    g.add_edges_from(p for p in pairs if p[0] != p[1])
    return g, ind


@pytest.mark.parametrize("name", list(TU_COUNTS))
def test_tu_against_networkx(data_root, name):
    d = load_dataset(name.lower(), data_root)
    graphs, nodes, classes = TU_COUNTS[name]
    assert (d.num_graphs, d.num_nodes, d.num_classes) == (graphs, nodes, classes)
    assert (d.task, d.metric, d.target_type, d.split) == ("graph", "acc", "multiclass", {})
    assert d.labels.shape == (graphs,) and int(d.labels.min()) == 0
    ref, ind = nx_reference(data_root / "tu" / name / "raw", name)
    assert d.graph.num_edges == 2 * ref.number_of_edges()
    assert torch.equal(d.graph.degree(), torch.tensor([ref.degree(v) for v in range(nodes)]))
    sizes = torch.bincount(torch.tensor(ind) - 1)
    assert torch.equal(d.graph_ptr[1:] - d.graph_ptr[:-1], sizes)
    batch = torch.repeat_interleave(torch.arange(graphs), sizes)
    ei = d.graph.to_edge_index()
    assert torch.equal(batch[ei[0]], batch[ei[1]])  # no edge crosses graphs
    assert_simple_undirected(d.graph)
    if name == "IMDB-BINARY":  # one-hot degree, capped at the set's max degree
        x = d.features.all()
        assert x.size(1) == int(d.graph.degree().max()) + 1
        assert torch.equal(x.argmax(1), d.graph.degree())


def test_tu_matches_pyg_reader(data_root):
    from torch_geometric.io import read_tu_data

    for name in ("MUTAG", "ENZYMES"):
        d = load_dataset(name, data_root, use_node_attr=True)
        ref, slices, sizes = read_tu_data(str(data_root / "tu" / name / "raw"), name)
        assert torch.allclose(d.features.all(), ref.x)
        # by default, as PyG's TUDataset(use_node_attr=False): the one-hot node labels only
        plain = load_dataset(name, data_root).features.all()
        assert torch.equal(plain, ref.x[:, sizes["num_node_attributes"]:])
        assert torch.equal(d.labels, ref.y)
        assert torch.equal(d.graph_ptr, slices["x"])
        assert torch.equal(edge_set(d.graph.to_edge_index(), d.num_nodes),
                           edge_set(ref.edge_index + torch.repeat_interleave(
                               slices["x"][:-1], slices["edge_index"].diff()), d.num_nodes))


def test_tu_extra_sets_and_prefix(data_root):
    assert load_dataset("AIDS", data_root).num_graphs == 2000
    assert load_dataset("mutagenicity", data_root).num_graphs == 4337
    assert load_dataset("tu:mutag", data_root).num_graphs == 188
    mutag = load_dataset("MUTAG", data_root)
    assert mutag.edge_features.shape == (mutag.graph.num_edges, 4)  # one-hot bond labels


def test_stratified_kfold():
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    folds = stratified_kfold(labels, k=10, seed=0)
    assert len(folds) == 10
    tests = torch.cat([te for _, te in folds])
    assert torch.equal(tests.sort().values, torch.arange(100))
    for tr, te in folds:
        assert torch.equal(torch.cat([tr, te]).sort().values, torch.arange(100))
        assert torch.bincount(labels[te], minlength=3).tolist() == [6, 3, 1]
    assert all(torch.equal(a[1], b[1]) for a, b in zip(folds, stratified_kfold(labels, 10, seed=0)))


# ---------------------------------------------------------------------------- OGB graph
OGBG = {"ogbg-molbace": (1513, "binary", "rocauc"), "ogbg-molbbbp": (2039, "binary", "rocauc"),
        "ogbg-molesol": (1128, "regression", "rmse"), "ogbg-molfreesolv": (642, "regression", "rmse")}


@pytest.mark.parametrize("name", list(OGBG))
def test_ogbg_sets(data_root, name):
    from ogb.graphproppred import Evaluator

    d = load_dataset(name, data_root)
    graphs, target, metric = OGBG[name]
    assert (d.num_graphs, d.target_type, d.metric, d.num_classes) == (graphs, target, metric, 1)
    assert d.labels.shape == (graphs, 1) and d.labels.dtype == torch.float32
    assert d.feature_kind == "ogb-atom" and d.features.dtype == torch.long and d.num_features == 9
    assert d.edge_features.shape == (d.graph.num_edges, 3)
    folder = data_root / "ogb" / name.replace("-", "_") / "split" / "scaffold"
    for part in ("train", "valid", "test"):
        with gzip.open(folder / f"{part}.csv.gz", "rt") as f:
            ref = [int(line) for line in f if line.strip()]
        assert d.split[part].tolist() == ref
    ev = Evaluator(d.meta["ogb_name"])
    y = d.labels.numpy()
    out = ev.eval({"y_true": y, "y_pred": y + (0.1 if target == "regression" else 0.0)})
    assert metric in out


def test_ogbg_matches_ogb_reader(data_root):
    from ogb.io.read_graph_raw import read_csv_graph_raw

    d = load_dataset("ogbg-molbace", data_root)
    graphs = read_csv_graph_raw(str(data_root / "ogb" / "ogbg_molbace" / "raw"), add_inverse_edge=True)
    assert len(graphs) == d.num_graphs
    offs = np.cumsum([0] + [g["num_nodes"] for g in graphs])
    assert torch.equal(d.graph_ptr, torch.from_numpy(offs))
    x = np.concatenate([g["node_feat"] for g in graphs])
    assert torch.equal(d.features.all(), torch.from_numpy(x))
    ei = np.concatenate([g["edge_index"] + o for g, o in zip(graphs, offs)], axis=1)
    ef = np.concatenate([g["edge_feat"] for g in graphs])
    # compare (src, dst, bond features) multisets: edge features follow the CSR order
    ours = torch.cat([d.graph.to_edge_index().t(), d.edge_features], 1)
    ref = torch.cat([torch.from_numpy(ei).t(), torch.from_numpy(ef)], 1)
    assert torch.equal(torch.unique(ours, dim=0), torch.unique(ref, dim=0))
    assert ours.size(0) == ref.size(0)


# ----------------------------------------------------------------------------- OGB link
def test_ogbl_ddi(data_root):
    from ogb.linkproppred import Evaluator

    d = load_dataset("ogbl-ddi", data_root)
    assert (d.num_nodes, d.task, d.metric, d.features) == (4267, "link", "hits@20", None)
    sizes = {k: tuple(v.shape) for k, v in d.split.items()}
    assert sizes == {"train": (2, 1067911), "valid": (2, 133489), "valid_neg": (2, 101882),
                     "test": (2, 133489), "test_neg": (2, 95599)}
    assert d.graph.num_edges == 2 * 1067911
    tr = d.split["train"]
    undirected = edge_set(torch.stack([tr.min(0).values, tr.max(0).values]), 4267)
    ei = d.graph.to_edge_index()
    fwd, bwd = ei[:, ei[0] < ei[1]], ei[:, ei[0] > ei[1]]
    assert torch.equal(edge_set(fwd, 4267), undirected)  # the graph = training edges, both ways
    assert torch.equal(edge_set(bwd.flip(0), 4267), undirected)
    ev = Evaluator(d.meta["ogb_name"])
    out = ev.eval({"y_pred_pos": torch.ones(10), "y_pred_neg": torch.zeros(100)})
    assert out["hits@20"] == 1.0


# ----------------------------------------------------------------------------- OGB node
def test_ogbn_round_trip(tmp_path):
    from ogb.io.read_graph_raw import read_csv_graph_raw

    src = load_dataset("synthetic-sbm", num_nodes=600)
    folder = write_ogbn_raw(src, tmp_path, "ogbn-sbm")
    assert folder == tmp_path / "ogbn_sbm"
    d = load_dataset("ogbn-sbm", tmp_path)
    assert torch.equal(d.graph.indptr, src.graph.indptr) and torch.equal(d.graph.indices, src.graph.indices)
    assert torch.equal(d.features.all(), src.features.all())
    assert torch.equal(d.labels, src.labels)
    assert all(torch.equal(d.split[k], src.split[k]) for k in ("train", "valid", "test"))
    assert (d.task, d.metric, d.num_classes) == ("node", "acc", src.num_classes)
    # OGB's own reader understands the layout (each undirected edge written once)
    (g,) = read_csv_graph_raw(str(folder / "raw"), add_inverse_edge=True)
    assert g["num_nodes"] == 600 and g["edge_index"].shape[1] == src.graph.num_edges
    assert np.allclose(g["node_feat"], src.features.all().numpy())
    # the parsed arrays were cached outside the data folder; a second load reads them back
    cached = list((Path(os.environ["GNNSYS_CACHE"]) / "processed" / "ogbn_sbm").glob("*.pt"))
    assert len(cached) == 1
    again = load_dataset("ogbn-sbm", tmp_path)
    assert torch.equal(again.features.all(), d.features.all()) and torch.equal(again.graph.indices,
                                                                                 d.graph.indices)
    # also found under <root>/ogb/
    (tmp_path / "ogb").mkdir()
    folder.rename(tmp_path / "ogb" / "ogbn_sbm")
    assert load_dataset("ogbn-sbm", tmp_path).num_nodes == 600


def test_ogbn_download_fails_fast_offline(tmp_path, monkeypatch):
    import socket

    from gnnsys.errors import DatasetNotFoundError

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(socket, "create_connection", offline)
    t = time.time()
    with pytest.raises(DatasetNotFoundError, match="GNNSYS_DATA") as e:
        load_dataset("ogbn-arxiv", tmp_path, download=True)
    assert time.time() - t < 5
    assert "ogbn_arxiv" in str(e.value) and "arxiv.zip" in str(e.value)
    with pytest.raises(DatasetNotFoundError, match="ind.cora.x"):
        load_dataset("cora", tmp_path, download=True)


# ----------------------------------------------------------------------------- networkx
def test_networkx_loader():
    g = nx.karate_club_graph()
    for v in g:
        g.nodes[v]["y"] = int(g.nodes[v]["club"] == "Officer")
    d = load_dataset("networkx", graph=g)
    assert torch.equal(d.graph.degree(), torch.tensor([g.degree(v) for v in g]))
    assert d.graph.num_edges == 2 * g.number_of_edges()
    assert torch.equal(d.labels, torch.tensor([g.nodes[v]["y"] for v in g]))
    assert torch.equal(d.features.all().argmax(1), d.graph.degree())  # one-hot degree
    assert sum(v.numel() for v in d.split.values()) == 34

    h = nx.path_graph(["a", "b", "c", "d"])
    for i, v in enumerate(h):
        h.nodes[v]["x"] = [float(i), 1.0]
    e = from_networkx_dataset(h, y=[0, 1, 0, 1], split={"train": torch.tensor([0, 1]),
                                                        "valid": torch.tensor([2]), "test": torch.tensor([3])})
    assert e.features.all().tolist() == [[0.0, 1.0], [1.0, 1.0], [2.0, 1.0], [3.0, 1.0]]
    assert e.meta["node_ids"] == ["a", "b", "c", "d"]
    c = from_networkx_dataset(nx.path_graph(4), y=[0, 1, 0, 1], features="constant")
    assert c.num_features == 1


# ------------------------------------------------------------------------------- splits
def test_random_node_split():
    s = random_node_split(1000, seed=3)
    assert [s[k].numel() for k in ("train", "valid", "test")] == [640, 160, 200]
    assert torch.equal(torch.cat(list(s.values())).sort().values, torch.arange(1000))


def test_link_split_cora(data_root):
    d = load_dataset("cora", data_root)
    ls = link_split(d, val=0.05, test=0.1, seed=0)
    m = 5278
    assert (ls.task, ls.metric) == ("link", "rocauc")
    nv, nt = round(0.05 * m), round(0.1 * m)
    assert [ls.split[k].size(1) for k in ("train", "valid", "valid_neg", "test", "test_neg")] == \
        [m - nv - nt, nv, nv, nt, nt]
    n = d.num_nodes
    full = edge_set(torch.cat([d.graph.to_edge_index()], 1), n)
    mp = edge_set(ls.graph.to_edge_index(), n)
    assert ls.graph.is_symmetric() and ls.graph.num_edges == 2 * (m - nv - nt)
    for k in ("valid", "test"):
        pos = ls.split[k]
        assert not torch.isin(edge_set(pos, n), mp).any()  # held-out edges not in the graph
        assert not torch.isin(edge_set(pos.flip(0), n), mp).any()
        assert torch.isin(edge_set(pos, n), full).all()
        neg = ls.split[f"{k}_neg"]
        assert not (neg[0] == neg[1]).any()
        assert not torch.isin(edge_set(neg, n), full).any() and not torch.isin(edge_set(neg.flip(0), n), full).any()
    allneg = torch.cat([ls.split["valid_neg"], ls.split["test_neg"]], 1)
    assert edge_set(allneg, n).numel() == allneg.size(1)  # distinct
    assert ls.features is d.features


def test_networkx_directed_multigraph_and_link_task():
    dg = nx.DiGraph([(0, 1), (1, 2), (2, 0), (2, 3)])
    d = from_networkx_dataset(dg, y=[0, 1, 0, 1])
    assert d.graph.num_edges == 4 and not d.graph.is_symmetric()
    assert torch.equal(d.graph.degree(), torch.tensor([dg.out_degree(v) for v in dg]))
    mg = nx.MultiGraph([(0, 1), (0, 1), (1, 2)])
    m = from_networkx_dataset(mg, y=[0, 1, 0])
    assert m.graph.num_edges == 4  # parallel edges merged, both directions stored
    g = nx.gnm_random_graph(200, 800, seed=1)
    ls = load_dataset("networkx", graph=g, task="link")
    assert (ls.task, ls.metric) == ("link", "rocauc")
    assert ls.split["valid"].size(1) == ls.split["valid_neg"].size(1) == 40
    assert ls.split["test"].size(1) == ls.split["test_neg"].size(1) == 80
    assert ls.graph.num_edges == 2 * (800 - 120)
