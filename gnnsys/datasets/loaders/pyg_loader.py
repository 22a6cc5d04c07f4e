"""A user's own PyG or DGL data as a gnnsys ``Dataset`` (issue 17, item 3).

- ``from_pyg(data)``: a ``torch_geometric.data.Data`` with ``x`` (optional: featureless),
  ``y`` and ``train_mask`` / ``val_mask`` / ``test_mask`` (node task), or an edge split
  (``train_pos_edge_index``, ``val_pos_edge_index``, ``val_neg_edge_index``, ... as
  ``train_test_split_edges`` makes, or the ``(train, val, test)`` triple of
  ``RandomLinkSplit``) for a link task;
- ``from_pyg(dataset)``: a PyG dataset of graphs (``InMemoryDataset``, e.g. ``TUDataset``,
  ``FakeDataset(num_graphs > 1)``) for graph classification/regression; a one-graph dataset is
  its graph;
- ``from_dgl(graph)``: a homogeneous ``DGLGraph`` with ``ndata["feat"]``, ``ndata["label"]`` and
  the three masks;
- ``load_dataset("pyg:NAME[/SUBSET]")`` (``--dataset pyg:Planetoid/Cora``): builds
  ``torch_geometric.datasets.NAME(root=..., name=SUBSET)`` and converts it.

Messages flow ``edge_index[0] -> edge_index[1]`` in PyG, DGL (``src -> dst``) and gnnsys alike;
edges are kept as given (duplicates merged). Bad input (no labels, masks of the wrong length or
type, ids out of range) is a ``DataFormatError`` naming the attribute and the fix.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from gnnsys.dataset import Dataset
from gnnsys.datasets.registry import cache_dir, register_dataset
from gnnsys.errors import ConfigError, DataFormatError, DatasetNotFoundError, GraphError
from gnnsys.graph import Graph
from gnnsys.storage import InMemoryFeatureStore

MASKS = (("train", "train_mask"), ("valid", "val_mask"), ("test", "test_mask"))
LINK_KEYS = {"train": "train_pos_edge_index", "valid": "val_pos_edge_index", "valid_neg": "val_neg_edge_index",
             "test": "test_pos_edge_index", "test_neg": "test_neg_edge_index"}


# --------------------------------------------------------------------------- helpers
def _graph(edge_index: Any, n: int, what: str) -> Graph:
    try:
        return Graph.from_edge_index(torch.as_tensor(edge_index), n, dedupe=True)
    except GraphError as e:
        raise DataFormatError(f"{what}: {e}") from e


def _features(x: Any, n: int, what: str) -> InMemoryFeatureStore | None:
    if x is None:
        return None
    x = torch.as_tensor(x)
    if x.dim() == 1:
        x = x.view(-1, 1)
    if x.dim() != 2 or x.size(0) != n:
        raise DataFormatError(f"{what}: node features have shape {tuple(x.shape)}; expected [{n}, F] "
                              f"(one row per node)")
    x = x.float()
    if not bool(torch.isfinite(x).all()):
        raise DataFormatError(f"{what}: node features hold NaN or inf; clean them before converting")
    return InMemoryFeatureStore(x.contiguous())


def _targets(y: Any, units: int, what: str, kind: str) -> tuple[torch.Tensor, int, str, str]:
    """``(labels, num_classes, target_type, metric)`` of ``y`` (one row per node or graph)."""
    if y is None:
        attr = "ndata['label']" if what.startswith("DGL") else "y"
        raise DataFormatError(f"{what} has no labels ({attr} is missing); a {kind} task needs one label per "
                              f"{kind}: set {attr} before converting")
    y = torch.as_tensor(y)
    if y.size(0) != units:
        raise DataFormatError(f"{what}: {y.size(0)} labels for {units} {kind}s; labels need one row per {kind}")
    if y.dim() == 2 and y.size(1) == 1 and not y.dtype.is_floating_point:
        y = y.view(-1)
    if not y.dtype.is_floating_point and y.dtype != torch.bool:
        if y.dim() != 1:
            return y.float(), y.size(1), "binary", "rocauc"
        y = y.long()
        if int(y.min()) < 0:
            raise DataFormatError(f"{what}: class labels must be >= 0, found {int(y.min())}")
        return y, max(int(y.max()) + 1, 2), "multiclass", "acc"
    yf = y.float()
    known = yf[~torch.isnan(yf)]
    if known.numel() and bool(((known == 0) | (known == 1)).all()) and yf.dim() == 2:
        return yf, yf.size(1), "binary", "rocauc"  # multi-label (NaN: unlabelled, as in OGB)
    if bool((known == known.round()).all()) and yf.dim() == 1 and not bool(torch.isnan(yf).any()):
        return yf.long(), max(int(yf.max()) + 1, 2), "multiclass", "acc"
    return yf, 1 if yf.dim() == 1 else yf.size(1), "regression", "rmse"


def _mask_ids(mask: Any, n: int, what: str, attr: str, column: int) -> torch.Tensor:
    m = torch.as_tensor(mask)
    if m.dim() == 2:  # several splits (e.g. WikiCS): one column each
        if not 0 <= column < m.size(1):
            raise DataFormatError(f"{what}: {attr} holds {m.size(1)} splits; split_index={column} is out of range")
        m = m[:, column]
    if m.dtype != torch.bool:
        if m.dim() == 1 and m.numel() and not m.dtype.is_floating_point and bool(((m == 0) | (m == 1)).all()) \
                and m.numel() == n:
            m = m.bool()
        else:
            raise DataFormatError(f"{what}: {attr} must be a boolean mask of length {n} (one entry per node), "
                                  f"got dtype {m.dtype} and shape {tuple(m.shape)}")
    if m.numel() != n:
        raise DataFormatError(f"{what}: {attr} has length {m.numel()} but the graph has {n} nodes; "
                              "a mask needs one entry per node")
    return m.nonzero().view(-1)


def node_split_from_masks(masks: dict[str, Any], n: int, what: str, seed: int = 0,
                          column: int = 0) -> dict[str, torch.Tensor]:
    """The ``train/valid/test`` node ids of the masks given (``None``: absent). With no mask at
    all: a random 64/16/20 split from ``seed``. With some missing: the nodes outside the given
    masks are shared evenly (seeded permutation) among the missing parts."""
    from gnnsys.datasets.splits import random_node_split

    given = {k: _mask_ids(m, n, what, attr, column) for (k, attr), m in zip(MASKS, masks.values()) if m is not None}
    if not given:
        return random_node_split(n, seed)
    missing = [k for k, _ in MASKS if k not in given]
    if missing:
        used = torch.zeros(n, dtype=torch.bool)
        for ids in given.values():
            used[ids] = True
        rest = (~used).nonzero().view(-1)
        rest = rest[torch.randperm(rest.numel(), generator=torch.Generator().manual_seed(seed))]
        for k, part in zip(missing, torch.tensor_split(rest, len(missing))):
            given[k] = part.sort().values
    return {k: given[k] for k, _ in MASKS}


def _pairs(t: Any, what: str, key: str) -> torch.Tensor:
    t = torch.as_tensor(t).long()
    if t.dim() != 2 or t.size(0) != 2:
        raise DataFormatError(f"{what}: {key} must be a [2, k] pair tensor, got shape {tuple(t.shape)}")
    return t


# --------------------------------------------------------------------------- PyG
def _is_pyg_dataset(obj: Any) -> bool:
    try:
        from torch_geometric.data import Dataset as PygDataset
    except ImportError:  # pragma: no cover - torch_geometric is a dependency
        return False
    return isinstance(obj, PygDataset)


def _from_pyg_link(train: Any, val: Any, test: Any, name: str) -> Dataset:
    """``RandomLinkSplit``'s triple: message passing over ``train.edge_index``; positives and
    negatives from each part's ``edge_label_index`` / ``edge_label``."""
    n = int(train.num_nodes)
    split: dict[str, torch.Tensor] = {}
    for part, d in (("train", train), ("valid", val), ("test", test)):
        eli, lab = getattr(d, "edge_label_index", None), getattr(d, "edge_label", None)
        if eli is None or lab is None:
            raise DataFormatError(f"PyG link split ({part}): edge_label_index and edge_label are missing; pass the "
                                  "three outputs of torch_geometric.transforms.RandomLinkSplit")
        eli, lab = _pairs(eli, "PyG link split", f"{part}.edge_label_index"), torch.as_tensor(lab)
        split[part] = eli[:, lab > 0.5]
        if part != "train":
            split[f"{part}_neg"] = eli[:, lab <= 0.5]
    return Dataset(name=name, task="link", graph=_graph(train.edge_index, n, "PyG link split (train.edge_index)"),
                   features=_features(getattr(train, "x", None), n, "PyG link split"), labels=None, split=split,
                   num_classes=1, target_type="binary", metric="rocauc", meta={"source": "pyg"})


def _from_pyg_data(data: Any, name: str, task: str | None, seed: int, split_index: int) -> Dataset:
    what = f"PyG Data {name!r}"
    n = int(data.num_nodes) if data.num_nodes is not None else None
    has_link = getattr(data, "train_pos_edge_index", None) is not None
    task = task or ("link" if has_link else "node")
    if n is None or (task != "link" and getattr(data, "edge_index", None) is None):
        raise DataFormatError(f"{what} needs edge_index and a node count (num_nodes or x)")
    if task == "link":
        if not has_link:
            raise DataFormatError(f"{what}: a link task needs an edge split: train_pos_edge_index, "
                                  "val_pos_edge_index/val_neg_edge_index, test_pos_edge_index/test_neg_edge_index "
                                  "(torch_geometric.utils.train_test_split_edges), or pass RandomLinkSplit's "
                                  "(train, val, test) triple")
        split = {k: _pairs(getattr(data, attr), what, attr) for k, attr in LINK_KEYS.items()
                 if getattr(data, attr, None) is not None}
        absent = [LINK_KEYS[k] for k in ("valid", "valid_neg", "test", "test_neg") if k not in split]
        if absent:
            raise DataFormatError(f"{what}: the edge split lacks {', '.join(absent)}")
        # train_test_split_edges keeps one direction of each training edge: message passing uses both
        graph = Graph.from_edge_index(split["train"], n, make_undirected=True, dedupe=True)
        return Dataset(name=name, task="link", graph=graph, features=_features(getattr(data, "x", None), n, what),
                       labels=None, split=split, num_classes=1, target_type="binary", metric="rocauc",
                       meta={"source": "pyg"})
    if task != "node":
        raise ConfigError(f"{what}: one Data object is a node or link task, not {task!r}; for graph tasks pass "
                          "a dataset of graphs")
    labels, k, target_type, metric = _targets(getattr(data, "y", None), n, what, "node")
    masks = {attr: getattr(data, attr, None) for _, attr in MASKS}
    split = node_split_from_masks(masks, n, what, seed, split_index)
    graph = _graph(data.edge_index, n, what)
    ef = getattr(data, "edge_attr", None)
    return Dataset(name=name, task="node", graph=graph, features=_features(getattr(data, "x", None), n, what),
                   labels=labels, split=split, num_classes=k, target_type=target_type, metric=metric,
                   edge_features=_edge_features(ef, graph, data.edge_index, what),
                   meta={"source": "pyg"})


def _edge_features(ef: Any, graph: Graph, edge_index: Any, what: str) -> torch.Tensor | None:
    """Per-edge features in the graph's CSR order (``edge_ids`` maps positions to columns)."""
    if ef is None:
        return None
    ef, m = torch.as_tensor(ef), torch.as_tensor(edge_index).size(1)
    if ef.size(0) != m:
        raise DataFormatError(f"{what}: edge_attr has {ef.size(0)} rows for {m} edges (one row per edge)")
    ef = ef.view(ef.size(0), -1).float()
    return ef if graph.edge_ids is None else ef[graph.edge_ids]


def _collated(dataset: Any) -> tuple[Any, Any]:
    """The collated storage and slices of an ``InMemoryDataset`` viewed whole, else ``None``."""
    from torch_geometric.data import InMemoryDataset

    if isinstance(dataset, InMemoryDataset) and getattr(dataset, "_indices", None) is None \
            and getattr(dataset, "slices", None) and "edge_index" in dataset.slices:
        return dataset._data, dataset.slices
    return None, None


def _from_pyg_graphs(dataset: Any, name: str, split: Mapping[str, Any] | None) -> Dataset:
    """A dataset of graphs: their disjoint union, ``graph_ptr``, one label per graph."""
    what = f"PyG dataset {name!r}"
    data, slices = _collated(dataset)
    if data is None:  # a subset or a plain Dataset: collate it (once, at conversion)
        from torch_geometric.data import Batch

        batch = Batch.from_data_list([dataset[i] for i in range(len(dataset))])
        node_ptr = batch.ptr
        edge_index, x, y = batch.edge_index, getattr(batch, "x", None), getattr(batch, "y", None)
        ea = getattr(batch, "edge_attr", None)
    else:  # vectorized: the collated storage keeps each graph's edge ids local
        if "x" in slices:
            node_ptr = slices["x"]
        else:
            counts = torch.as_tensor([dataset[i].num_nodes for i in range(len(dataset))])  # pragma: no cover
            node_ptr = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])  # pragma: no cover
        e_ptr = slices["edge_index"]
        offset = torch.repeat_interleave(node_ptr[:-1], e_ptr.diff())
        edge_index = data.edge_index + offset
        x, y, ea = getattr(data, "x", None), getattr(data, "y", None), getattr(data, "edge_attr", None)
    node_ptr = torch.as_tensor(node_ptr).long()
    n, g = int(node_ptr[-1]), node_ptr.numel() - 1
    labels, k, target_type, metric = _targets(y, g, what, "graph")
    graph = _graph(edge_index, n, what)
    sp: dict[str, torch.Tensor] = {}
    if split is None and hasattr(dataset, "get_idx_split"):  # OGB's PygGraphPropPredDataset
        split = dataset.get_idx_split()
    if split is not None:
        names = {"val": "valid", "valid": "valid", "train": "train", "test": "test"}
        for key, ids in split.items():
            if key not in names:
                raise ConfigError(f"{what}: split keys are train/valid/test, got {key!r}")
            sp[names[key]] = torch.as_tensor(ids).long().view(-1)
    return Dataset(name=name, task="graph", graph=graph, features=_features(x, n, what), labels=labels, split=sp,
                   num_classes=k, target_type=target_type, metric=metric, graph_ptr=node_ptr,
                   edge_features=_edge_features(ea, graph, edge_index, what),
                   meta={"source": "pyg", "cv_folds": None if sp else 10})


def from_pyg(data_or_dataset: Any, name: str | None = None, task: str | None = None, *, seed: int = 0,
             split: Mapping[str, Any] | None = None, split_index: int = 0) -> Dataset:
    """A gnnsys ``Dataset`` from PyG data (see the module docstring).

    - ``Data`` (node task): ``x``, ``y``, the masks (2-D masks: column ``split_index``); masks
      left out are filled from the remaining nodes, none at all gives a random 64/16/20 split
      from ``seed``; ``task="link"`` (or a ``train_pos_edge_index``) reads the edge split.
    - ``(train, val, test)`` from ``RandomLinkSplit``: a link task.
    - a dataset of several graphs: graph task; ``split`` (graph ids per ``train/valid/test``, or
      the dataset's ``get_idx_split()``), else stratified 10-fold CV as for TU sets.
    """
    if isinstance(data_or_dataset, (tuple, list)) and len(data_or_dataset) == 3:
        return _from_pyg_link(*data_or_dataset, name=name or "pyg-link")
    if _is_pyg_dataset(data_or_dataset):
        ds = data_or_dataset
        name = name or type(ds).__name__ + (f"-{ds.name}" if isinstance(getattr(ds, "name", None), str) else "")
        if len(ds) == 0:
            raise DataFormatError(f"PyG dataset {name!r} is empty")
        if task == "graph" or (task is None and len(ds) > 1):
            return _from_pyg_graphs(ds, name, split)
        if len(ds) != 1:
            raise ConfigError(f"PyG dataset {name!r} holds {len(ds)} graphs; a {task} task needs one graph "
                              "(pass dataset[i]) or use task='graph'")
        return _from_pyg_data(ds[0], name, task, seed, split_index)
    try:
        from torch_geometric.data import Data
    except ImportError as e:  # pragma: no cover
        raise ConfigError("Dataset.from_pyg needs torch_geometric") from e
    if not isinstance(data_or_dataset, Data):
        raise DataFormatError(f"Dataset.from_pyg takes a torch_geometric Data, a PyG dataset or RandomLinkSplit's "
                              f"(train, val, test) triple, not {type(data_or_dataset).__name__}")
    return _from_pyg_data(data_or_dataset, name or "pyg", task, seed, split_index)


# --------------------------------------------------------------------------- DGL
def from_dgl(graph: Any, name: str = "dgl", *, feat: str = "feat", label: str = "label", seed: int = 0,
             split_index: int = 0) -> Dataset:
    """A node-task ``Dataset`` from a homogeneous ``DGLGraph``: ``ndata[feat]`` (optional),
    ``ndata[label]`` and ``ndata["train_mask"/"val_mask"/"test_mask"]`` (handled as in
    ``from_pyg``); edges ``src -> dst`` as DGL stores them, ``edata`` ignored."""
    try:
        import dgl
    except ImportError as e:  # pragma: no cover - the dgl extra
        raise ConfigError("Dataset.from_dgl needs DGL: pip install 'gnnsys[dgl]'") from e
    what = f"DGL graph {name!r}"
    if not isinstance(graph, dgl.DGLGraph):
        raise DataFormatError(f"Dataset.from_dgl takes a dgl.DGLGraph, not {type(graph).__name__}")
    if len(graph.ntypes) != 1 or len(graph.etypes) != 1:
        raise DataFormatError(f"{what} is heterogeneous ({graph.ntypes} / {graph.etypes}); convert it with "
                              "dgl.to_homogeneous first")
    n = int(graph.num_nodes())
    src, dst = graph.edges()
    nd = graph.ndata
    labels, k, target_type, metric = _targets(nd[label] if label in nd else None, n, what, "node")
    masks = {attr: nd[attr] if attr in nd else None for _, attr in MASKS}
    split = node_split_from_masks(masks, n, what, seed, split_index)
    return Dataset(name=name, task="node", graph=_graph(torch.stack([src, dst]).cpu(), n, what),
                   features=_features(nd[feat].cpu() if feat in nd else None, n, what), labels=labels.cpu(),
                   split=split, num_classes=k, target_type=target_type, metric=metric, meta={"source": "dgl"})


# --------------------------------------------------------------------------- pyg:NAME
def pyg_root(root: Path | None, cls_name: str) -> Path:
    """Where ``pyg:NAME`` keeps its files: ``<data root>/pyg/NAME`` when that folder exists (data
    placed there by the user), else ``$GNNSYS_CACHE/pyg/NAME`` (PyG writes its processed files
    beside the raw ones, so the read-only data folder is not used otherwise)."""
    if root is not None and (Path(root) / "pyg" / cls_name).exists():
        return Path(root) / "pyg" / cls_name
    return cache_dir() / "pyg" / cls_name


@register_dataset("pyg:", "a torch_geometric.datasets class: pyg:NAME or pyg:NAME/SUBSET (e.g. pyg:KarateClub, "
                  "pyg:Planetoid/PubMed, pyg:TUDataset/COLLAB); downloads as PyG does", prefix=True)
def load_pyg(name: str, root: Any = None, **kw: Any) -> Dataset:
    """``pyg:NAME[/SUBSET]``: ``torch_geometric.datasets.NAME(root=..., name=SUBSET)``, converted
    with ``from_pyg`` (``kw`` go to ``from_pyg``: ``task``, ``seed``, ``split_index``)."""
    import torch_geometric.datasets as pyg_datasets

    spec = name.split(":", 1)[1]
    cls_name, _, subset = spec.partition("/")
    cls = getattr(pyg_datasets, cls_name, None)
    if not cls_name or cls is None or not isinstance(cls, type):
        known = ", ".join(sorted(n for n in dir(pyg_datasets) if n[:1].isupper())[:12])
        raise DatasetNotFoundError(f"unknown PyG dataset class {cls_name!r} in {name!r}: use a class of "
                                   f"torch_geometric.datasets (e.g. {known}, ...)")
    params = inspect.signature(cls).parameters
    args: dict[str, Any] = {}
    if "root" in params:
        args["root"] = str(pyg_root(root, cls_name))
    if subset:
        if "name" not in params:
            raise ConfigError(f"{name}: torch_geometric.datasets.{cls_name} takes no name, so /{subset} cannot "
                              f"select a subset; use pyg:{cls_name}")
        args["name"] = subset
    elif "name" in params and params["name"].default is inspect.Parameter.empty:
        raise ConfigError(f"{name}: torch_geometric.datasets.{cls_name} needs a name: use pyg:{cls_name}/SUBSET")
    try:
        ds = cls(**args)
    except Exception as e:  # a download or parse failure of PyG's: report it with what was called
        where = f" under {args['root']}" if "root" in args else ""
        call = ", ".join(f"{k}={v!r}" for k, v in args.items())
        raise DatasetNotFoundError(f"{name}: torch_geometric.datasets.{cls_name}({call}) failed "
                                   f"({type(e).__name__}: {e}); it downloads where there is internet, or "
                                   f"reads the files PyG expects{where}") from e
    return from_pyg(ds, name=name, **kw)
