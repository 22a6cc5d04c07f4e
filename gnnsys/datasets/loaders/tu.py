"""TU Dortmund graph-classification sets (MUTAG, PROTEINS, ENZYMES, NCI1, IMDB-BINARY, AIDS,
Mutagenicity, or any ``tu:NAME``) from the original ``NAME_*.txt`` files, as one union graph."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gnnsys.dataset import Dataset
from gnnsys.datasets._io import not_found, read_table, read_vector
from gnnsys.datasets.registry import register_dataset
from gnnsys.errors import ConfigError, DataFormatError
from gnnsys.graph import Graph
from gnnsys.storage import InMemoryFeatureStore

TU_SETS = ("MUTAG", "PROTEINS", "ENZYMES", "NCI1", "IMDB-BINARY", "AIDS", "Mutagenicity")


def find_tu(root: Path, name: str) -> tuple[Path, str]:
    """Folder holding ``<NAME>_A.txt`` and the set's file prefix ``NAME``: ``<root>/tu/NAME/raw/``
    or PyG's ``<root>/NAME/raw/`` (names matched case-insensitively, so ``tu:mutag`` works)."""
    cands = [root / "tu" / name / "raw", root / name / "raw", root / "tu" / name, root / name]
    for c in cands:
        if (c / f"{name}_A.txt").is_file():
            return c, name
    for base in (root / "tu", root):
        if not base.is_dir():
            continue
        for d in base.iterdir():
            if d.is_dir() and d.name.lower() == name.lower():
                for c in (d / "raw", d):
                    for f in c.glob("*_A.txt"):
                        if f.name.lower() == f"{name.lower()}_a.txt":
                            return c, f.name[: -len("_A.txt")]
    raise not_found(f"TU dataset {name}", [cands[0] / f"{name}_A.txt", cands[1] / f"{name}_A.txt"])


def _one_hot_columns(labels: np.ndarray) -> torch.Tensor:
    """One-hot encode every column of an integer label table (each shifted to start at 0) and
    concatenate, like PyG's TU reader."""
    t = torch.from_numpy(labels).long()
    t = t - t.min(dim=0).values
    return torch.cat([F.one_hot(t[:, j], int(t[:, j].max()) + 1) for j in range(t.size(1))], dim=1).float()


def one_hot_degree(graph: Graph, max_degree: int | None = None) -> torch.Tensor:
    """One-hot out-degree features (PyG's ``OneHotDegree``): ``max_degree + 1`` columns, degrees
    above ``max_degree`` clipped to it; ``max_degree`` defaults to the graph's maximum."""
    deg = graph.degree()
    if max_degree is None:
        max_degree = int(deg.max()) if deg.numel() else 0
    return F.one_hot(deg.clamp(max=max_degree), max_degree + 1).float()


def read_tu(folder: Path, name: str, use_node_attr: bool = True, use_edge_attr: bool = True) -> dict[str, Any]:
    """Parse a TU set into a union graph (undirected, no self loops, deduplicated), node
    features (attributes, then one-hot node labels; ``None`` if the set has neither), edge
    features aligned with the CSR positions, ``graph_ptr`` and graph labels remapped to 0..C-1."""
    f = {k: folder / f"{name}_{k}.txt" for k in
         ("A", "graph_indicator", "graph_labels", "node_labels", "node_attributes", "edge_labels",
          "edge_attributes")}
    edges = read_table(f["A"], dtype=np.int64, ncols=2)
    indicator = read_vector(f["graph_indicator"])
    glabels = read_table(f["graph_labels"], dtype=np.float64)
    n = indicator.shape[0]
    num_graphs = glabels.shape[0]
    if n == 0:
        raise DataFormatError(f"{f['graph_indicator']}: no nodes")
    if indicator.min() != 1 or indicator.max() != num_graphs:
        raise DataFormatError(
            f"{f['graph_indicator']} names graphs {indicator.min()}..{indicator.max()} but "
            f"{f['graph_labels'].name} has {num_graphs} labels (graph ids must be 1..{num_graphs}); "
            "the files are truncated or do not belong together"
        )
    if np.any(np.diff(indicator) < 0):
        raise DataFormatError(f"{f['graph_indicator']}: nodes of a graph must be contiguous (ids sorted)")
    batch = torch.from_numpy(indicator - 1)
    ei = torch.from_numpy(edges).t() - 1
    if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= n):
        raise DataFormatError(
            f"{f['A']}: node ids {int(ei.min()) + 1}..{int(ei.max()) + 1} outside 1..{n} (the number of "
            f"lines of {f['graph_indicator'].name}); the files are truncated or do not belong together"
        )
    if ei.numel() and bool((batch[ei[0]] != batch[ei[1]]).any()):
        raise DataFormatError(f"{f['A']}: some edges join nodes of different graphs")

    def node_table(key: str, dtype: type) -> np.ndarray | None:
        if not f[key].is_file():
            return None
        t = read_table(f[key], dtype=dtype)
        if t.shape[0] != n:
            raise DataFormatError(f"{f[key]}: {t.shape[0]} rows but {f['graph_indicator'].name} has {n} nodes")
        return t

    def edge_table(key: str, dtype: type) -> np.ndarray | None:
        if not f[key].is_file():
            return None
        t = read_table(f[key], dtype=dtype)
        if t.shape[0] != edges.shape[0]:
            raise DataFormatError(f"{f[key]}: {t.shape[0]} rows but {f['A'].name} has {edges.shape[0]} edges")
        return t

    parts = []
    attrs = node_table("node_attributes", np.float32) if use_node_attr else None
    if attrs is not None:
        parts.append(torch.from_numpy(attrs))
    nlab = node_table("node_labels", np.int64)
    if nlab is not None:
        parts.append(_one_hot_columns(nlab))
    x = torch.cat(parts, dim=1) if parts else None

    graph = Graph.from_edge_index(ei, n, make_undirected=True, remove_self_loops=True, dedupe=True)
    eparts = []
    eattr = edge_table("edge_attributes", np.float32) if use_edge_attr else None
    if eattr is not None:
        eparts.append(torch.from_numpy(eattr))
    elab = edge_table("edge_labels", np.int64) if use_edge_attr else None
    if elab is not None:
        eparts.append(_one_hot_columns(elab))
    edge_x = None
    if eparts:
        assert graph.edge_ids is not None
        edge_x = torch.cat(eparts, dim=1)[graph.edge_ids % max(edges.shape[0], 1)]

    if glabels.shape[1] != 1:
        raise DataFormatError(f"{f['graph_labels']}: expected one label per line")
    _, y = torch.unique(torch.from_numpy(glabels[:, 0]), sorted=True, return_inverse=True)
    counts = torch.bincount(batch, minlength=num_graphs)
    graph_ptr = torch.zeros(num_graphs + 1, dtype=torch.long)
    torch.cumsum(counts, 0, out=graph_ptr[1:])
    return {"graph": graph, "x": x, "edge_x": edge_x, "graph_ptr": graph_ptr, "y": y.long(),
            "num_node_attributes": 0 if attrs is None else attrs.shape[1],
            "num_node_label_columns": 0 if nlab is None else parts[-1].size(1)}


def load_tu(name: str, root: Path, use_node_attr: bool = False, use_edge_attr: bool = True,
            max_degree: int | None = None, **kw: Any) -> Dataset:
    """Load a TU set. Features: one-hot node labels, with the continuous node attributes in
    front when ``use_node_attr`` (off by default, as PyG's ``TUDataset`` and the GIN paper:
    PROTEINS' one raw attribute ranges over tens and swamps its 3 label columns); a set with
    neither (IMDB-BINARY) gets one-hot degree features capped at ``max_degree`` (default: the
    set's maximum degree). Graph task, stratified 10-fold CV (``split`` is empty)."""
    if kw:
        raise ConfigError(f"TU loader got unexpected options {sorted(kw)}")
    folder, fname = find_tu(Path(root), name)
    r = read_tu(folder, fname, use_node_attr, use_edge_attr)
    x, degree_features = r["x"], r["x"] is None
    if degree_features:
        x = one_hot_degree(r["graph"], max_degree)
    return Dataset(
        name=fname, task="graph", graph=r["graph"], features=InMemoryFeatureStore(x), labels=r["y"],
        split={}, num_classes=int(r["y"].max()) + 1, target_type="multiclass", metric="acc",
        graph_ptr=r["graph_ptr"], edge_features=r["edge_x"],
        meta={"source": str(folder), "degree_features": degree_features, "cv_folds": 10,
              "num_node_attributes": r["num_node_attributes"], "num_node_label_columns": r["num_node_label_columns"]},
    )


def _load_named(canon: str, name: str, root: Path, **kw: Any) -> Dataset:
    """Registered loader of one named TU set (``name`` as typed; ``canon`` its folder name)."""
    return load_tu(canon, root, **kw)


for _canon in TU_SETS:
    register_dataset(_canon, f"TU {_canon} graph classification (graph task, acc, 10-fold CV)")(
        partial(_load_named, _canon))


@register_dataset("tu:", "any TU Dortmund set in <root>/tu/NAME/raw/, e.g. tu:COLLAB (graph task)", prefix=True)
def load_tu_any(name: str, root: Path, **kw: Any) -> Dataset:
    """``tu:NAME``: any TU set found in the data folder."""
    return load_tu(name.split(":", 1)[1], root, **kw)
