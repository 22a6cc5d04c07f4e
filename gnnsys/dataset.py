"""``Dataset``: a graph (or a union of graphs), its features, labels, split and task."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from gnnsys.errors import DataFormatError, GraphError
from gnnsys.graph import Graph
from gnnsys.storage import FeatureStore

TASKS = ("node", "link", "graph")
TARGET_TYPES = ("multiclass", "binary", "regression")


@dataclass
class Dataset:
    """Everything a trainer needs about one dataset.

    - ``task``: ``"node"``, ``"link"`` or ``"graph"``
    - ``graph``: the graph; for graph tasks the disjoint union of all graphs, graph ``g``
      owning nodes ``graph_ptr[g]:graph_ptr[g+1]``
    - ``features``: a ``FeatureStore`` (``None``: featureless, the model learns node embeddings)
    - ``labels``: node labels (node task), graph labels (graph task), ``None`` for links
    - ``split``: node task: ``"train"/"valid"/"test"`` node-id tensors; graph task: graph-id
      tensors (TU sets have none: trainers run stratified k-fold CV); link task:
      ``"train"/"valid"/"test"`` positive pairs ``[2, k]`` and ``"valid_neg"/"test_neg"``
    - ``num_classes``: classes (multiclass), tasks (binary multi-label), targets (regression)
    - ``target_type``: ``"multiclass"``, ``"binary"`` or ``"regression"``
    - ``metric``: the dataset's standard metric (``"acc"``, ``"rocauc"``, ``"rmse"``, ``"hits@20"``)
    - ``feature_kind``: ``"dense"`` or ``"ogb-atom"`` (categorical atom features, OGB's AtomEncoder)
    - ``edge_features``: per-edge features aligned with the graph's CSR positions
    """

    name: str
    task: str
    graph: Graph
    features: FeatureStore | None
    labels: torch.Tensor | None
    split: dict[str, torch.Tensor]
    num_classes: int
    target_type: str = "multiclass"
    metric: str = "acc"
    feature_kind: str = "dense"
    graph_ptr: torch.Tensor | None = None
    edge_features: torch.Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def num_nodes(self) -> int:
        return self.graph.num_nodes

    @property
    def num_features(self) -> int:
        return 0 if self.features is None else self.features.dim

    @property
    def num_graphs(self) -> int:
        return 0 if self.graph_ptr is None else self.graph_ptr.numel() - 1

    def validate(self) -> None:
        """Check shapes, ranges and the split; raise a ``GnnsysError`` naming the problem."""
        if self.task not in TASKS:
            raise DataFormatError(f"{self.name}: task must be one of {TASKS}, got {self.task!r}")
        if self.target_type not in TARGET_TYPES:
            raise DataFormatError(f"{self.name}: target_type must be one of {TARGET_TYPES}")
        n = self.graph.num_nodes
        if self.features is not None and self.features.num_nodes != n:
            raise DataFormatError(
                f"{self.name}: features have {self.features.num_nodes} rows but the graph has {n} nodes"
            )
        if self.task == "graph":
            if self.graph_ptr is None:
                raise DataFormatError(f"{self.name}: a graph task needs graph_ptr")
            if int(self.graph_ptr[-1]) != n:
                raise DataFormatError(f"{self.name}: graph_ptr ends at {int(self.graph_ptr[-1])}, not {n}")
        units = {"node": n, "graph": self.num_graphs, "link": n}[self.task]
        if self.labels is not None and self.task != "link" and self.labels.size(0) != units:
            raise DataFormatError(
                f"{self.name}: {self.labels.size(0)} labels for {units} {self.task}s"
            )
        if self.target_type == "multiclass" and self.num_classes < 2 and self.labels is not None:
            raise DataFormatError(f"{self.name}: a classification task needs >= 2 classes")
        for k, ids in self.split.items():
            if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= units):
                raise GraphError(
                    f"{self.name}: split '{k}' holds ids {int(ids.min())}..{int(ids.max())} outside "
                    f"[0, {units})"
                )
        if "train" in self.split and self.split["train"].numel() == 0:
            raise DataFormatError(
                f"{self.name}: the training split is empty; nothing to train on. "
                "Check the split files or use --split random."
            )

    def signature(self) -> dict[str, Any]:
        """What a model trained on this dataset depends on: name, task, sizes, features,
        classes, metric (checkpoints and saved models compare it)."""
        return {"name": self.name, "task": self.task, "num_nodes": self.num_nodes, "num_edges": self.graph.num_edges,
                "num_features": self.num_features, "num_classes": self.num_classes, "num_graphs": self.num_graphs,
                "target_type": self.target_type, "metric": self.metric, "feature_kind": self.feature_kind}

    # ---- your own data in (issue 17, item 3); the converters live in gnnsys.datasets.loaders.pyg_loader
    @staticmethod
    def from_pyg(data_or_dataset: Any, name: str | None = None, task: str | None = None, **kw: Any) -> Dataset:
        """A ``Dataset`` from a PyG ``Data`` (``x``, ``y``, masks or an edge split), a PyG dataset of
        graphs (graph task) or ``RandomLinkSplit``'s ``(train, val, test)``; see
        ``gnnsys.datasets.loaders.pyg_loader.from_pyg``."""
        from gnnsys.datasets.loaders.pyg_loader import from_pyg

        return from_pyg(data_or_dataset, name=name, task=task, **kw)

    @staticmethod
    def from_dgl(graph: Any, name: str = "dgl", **kw: Any) -> Dataset:
        """A node-task ``Dataset`` from a ``DGLGraph`` with ``ndata`` ``feat``, ``label`` and
        ``train_mask``/``val_mask``/``test_mask``; see ``pyg_loader.from_dgl``."""
        from gnnsys.datasets.loaders.pyg_loader import from_dgl

        return from_dgl(graph, name=name, **kw)
    # ---- end your own data in

    def graph_nodes(self, g: int) -> tuple[int, int]:
        """Node range ``[start, end)`` of graph ``g`` (graph tasks)."""
        assert self.graph_ptr is not None
        return int(self.graph_ptr[g]), int(self.graph_ptr[g + 1])

    def __repr__(self) -> str:
        parts = [f"name={self.name!r}", f"task={self.task!r}", f"nodes={self.num_nodes}",
                 f"edges={self.graph.num_edges}", f"features={self.num_features}",
                 f"classes={self.num_classes}"]
        if self.task == "graph":
            parts.append(f"graphs={self.num_graphs}")
        parts.append("split={" + ", ".join(f"{k}: {v.shape[-1]}" for k, v in self.split.items()) + "}")
        return "Dataset(" + ", ".join(parts) + ")"
