"""Bad input gives a clear ``GnnsysError`` naming the problem (one test per error kind), made
with small broken copies of the real files or tiny files written here."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from gnnsys.datasets import load_dataset, write_ogbn_raw
from gnnsys.errors import DataFormatError, DatasetNotFoundError, GnnsysError


@pytest.fixture(autouse=True)
def _no_download(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GNNSYS_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("GNNSYS_NO_DOWNLOAD", "1")


def copy_tree(src: Path, dst: Path) -> Path:
    """Writable copy of a (read-only) data folder."""
    for f in src.rglob("*"):
        if f.is_file():
            out = dst / f.relative_to(src)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(f.read_bytes())
    return dst


def copy_tu(data_root: Path, tmp_path: Path, name: str) -> Path:
    return copy_tree(data_root / "tu" / name / "raw", tmp_path / "tu" / name / "raw")


def write_gz(path: Path, text: str) -> None:
    path.write_bytes(gzip.compress(text.encode()))


@pytest.fixture
def ogbn_root(tmp_path) -> Path:
    """A small generated node set written in OGB's raw layout."""
    write_ogbn_raw(load_dataset("synthetic-sbm", num_nodes=200), tmp_path, "ogbn-tiny")
    return tmp_path


def test_unknown_dataset_lists_names():
    with pytest.raises(DatasetNotFoundError, match="unknown dataset 'cora2'") as e:
        load_dataset("cora2")
    for known in ("cora", "citeseer", "MUTAG", "IMDB-BINARY", "ogbg-molbace", "ogbl-ddi", "ogbn-*", "networkx"):
        assert known in str(e.value)


@pytest.mark.parametrize("name,expected", [
    ("cora", "planetoid/raw/ind.cora.x"), ("MUTAG", "tu/MUTAG/raw/MUTAG_A.txt"),
    ("ogbg-molbace", "ogb/ogbg_molbace"), ("ogbl-ddi", "ogb/ogbl_ddi"), ("ogbn-arxiv", "ogb/ogbn_arxiv"),
])
def test_missing_data_folder(tmp_path, name, expected):
    with pytest.raises(DatasetNotFoundError) as e:
        load_dataset(name, tmp_path / "nowhere")
    assert expected in str(e.value) and "GNNSYS_DATA" in str(e.value)


def test_truncated_csv_gz(data_root, tmp_path):
    folder = copy_tree(data_root / "ogb" / "ogbg_molbace", tmp_path / "ogb" / "ogbg_molbace")
    f = folder / "raw" / "edge.csv.gz"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(DataFormatError, match="edge.csv.gz.*truncated or corrupted"):
        load_dataset("ogbg-molbace", tmp_path)


def test_corrupted_gzip(ogbn_root):
    f = ogbn_root / "ogbn_tiny" / "raw" / "node-feat.csv.gz"
    data = bytearray(f.read_bytes())
    data[:4] = b"junk"
    f.write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match="node-feat.csv.gz"):
        load_dataset("ogbn-tiny", ogbn_root)


def test_node_feat_rows_mismatch(ogbn_root):
    f = ogbn_root / "ogbn_tiny" / "raw" / "node-feat.csv.gz"
    lines = gzip.decompress(f.read_bytes()).decode().splitlines()
    write_gz(f, "\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataFormatError, match="node-feat.csv.gz: 199 rows but the graph has 200 nodes"):
        load_dataset("ogbn-tiny", ogbn_root)


def test_graph_indicator_length_mismatch(data_root, tmp_path):
    raw = copy_tu(data_root, tmp_path, "MUTAG")
    labels = (raw / "MUTAG_graph_labels.txt").read_text().splitlines()
    (raw / "MUTAG_graph_labels.txt").write_text("\n".join(labels[:-5]) + "\n")
    with pytest.raises(DataFormatError, match="MUTAG_graph_indicator.txt names graphs 1..188 but "
                                              "MUTAG_graph_labels.txt has 183 labels"):
        load_dataset("MUTAG", tmp_path)


def test_graph_indicator_truncated(data_root, tmp_path):
    raw = copy_tu(data_root, tmp_path, "MUTAG")
    ind = (raw / "MUTAG_graph_indicator.txt").read_text().splitlines()
    (raw / "MUTAG_graph_indicator.txt").write_text("\n".join(ind[:-3]) + "\n")
    with pytest.raises(DataFormatError, match="MUTAG_A.txt: node ids .* outside 1..3368"):
        load_dataset("MUTAG", tmp_path)


def test_node_labels_rows_mismatch(data_root, tmp_path):
    raw = copy_tu(data_root, tmp_path, "MUTAG")
    lab = (raw / "MUTAG_node_labels.txt").read_text().splitlines()
    (raw / "MUTAG_node_labels.txt").write_text("\n".join(lab[:-1]) + "\n")
    with pytest.raises(DataFormatError, match="MUTAG_node_labels.txt: 3370 rows but"):
        load_dataset("MUTAG", tmp_path)


def test_nan_features(data_root, tmp_path):
    raw = copy_tu(data_root, tmp_path, "ENZYMES")
    f = raw / "ENZYMES_node_attributes.txt"
    lines = f.read_text().splitlines()
    lines[10] = ", ".join(["nan"] * len(lines[10].split(",")))
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match="NaN or inf"):
        load_dataset("ENZYMES", tmp_path, use_node_attr=True)


def test_edge_ids_out_of_range_tu(data_root, tmp_path):
    raw = copy_tu(data_root, tmp_path, "MUTAG")
    with open(raw / "MUTAG_A.txt", "a") as f:
        f.write("3371, 5000\n")
    with pytest.raises(DataFormatError, match="MUTAG_A.txt: node ids 1..5000 outside 1..3371"):
        load_dataset("MUTAG", tmp_path)


def test_edge_ids_out_of_range_ogbn(ogbn_root):
    raw = ogbn_root / "ogbn_tiny" / "raw"
    lines = gzip.decompress((raw / "edge.csv.gz").read_bytes()).decode().splitlines()
    lines[0] = "0,200"
    write_gz(raw / "edge.csv.gz", "\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"edge.csv.gz: .*\[0, 200\)"):
        load_dataset("ogbn-tiny", ogbn_root)


def test_edge_local_ids_out_of_range_ogbg(data_root, tmp_path):
    folder = copy_tree(data_root / "ogb" / "ogbg_molfreesolv", tmp_path / "ogb" / "ogbg_molfreesolv")
    f = folder / "raw" / "edge.csv.gz"
    lines = gzip.decompress(f.read_bytes()).decode().splitlines()
    lines[0] = "0,99"
    write_gz(f, "\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match="edge.csv.gz: edge 0 joins local node ids"):
        load_dataset("ogbg-molfreesolv", tmp_path)


def test_empty_training_split(ogbn_root):
    (ogbn_root / "ogbn_tiny" / "split" / "random" / "train.csv.gz").write_bytes(gzip.compress(b""))
    with pytest.raises(DataFormatError, match="training split is empty"):
        load_dataset("ogbn-tiny", ogbn_root)


def test_truncated_planetoid_pickle(data_root, tmp_path):
    raw = copy_tree(data_root / "planetoid" / "raw", tmp_path / "planetoid" / "raw")
    f = raw / "ind.cora.allx"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(DataFormatError, match="ind.cora.allx: not a readable Planetoid pickle"):
        load_dataset("cora", tmp_path)


def test_truncated_ogbl_split(tmp_path):
    folder = tmp_path / "ogb" / "ogbl_ddi"
    (folder / "raw").mkdir(parents=True)
    (folder / "split" / "target").mkdir(parents=True)
    edges = np.array([[0, 1], [1, 2], [2, 3], [3, 4]])
    write_gz(folder / "raw" / "edge.csv.gz", "\n".join(f"{a},{b}" for a, b in edges) + "\n")
    write_gz(folder / "raw" / "num-node-list.csv.gz", "5\n")
    torch.save({"edge": edges}, folder / "split" / "target" / "train.pt")
    for part in ("valid", "test"):
        torch.save({"edge": edges[:1], "edge_neg": np.array([[0, 4]])}, folder / "split" / "target" / f"{part}.pt")
    d = load_dataset("ogbl-ddi", tmp_path)  # tiny but valid: numpy inside the .pt files
    assert d.split["valid_neg"].tolist() == [[0], [4]] and d.graph.num_edges == 8
    f = folder / "split" / "target" / "test.pt"
    f.write_bytes(f.read_bytes()[:50])
    with pytest.raises(DataFormatError, match="test.pt: not a readable torch file"):
        load_dataset("ogbl-ddi", tmp_path)


def test_non_numeric_tu_file(data_root, tmp_path):
    raw = copy_tu(data_root, tmp_path, "MUTAG")
    with open(raw / "MUTAG_graph_labels.txt", "a") as f:
        f.write("oops\n")
    with pytest.raises(GnnsysError, match="MUTAG_graph_labels.txt"):
        load_dataset("MUTAG", tmp_path)


def test_unknown_loader_option(data_root):
    from gnnsys.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unexpected options \['colour'\]"):
        load_dataset("cora", data_root, colour="red")
