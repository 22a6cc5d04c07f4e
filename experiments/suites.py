"""The standard benchmark suites, defined once (``gnnsys bench SUITE``; the paper reproductions
in ``gnnsys.experiments`` read their cases from here).

A suite is a list of ``Case`` s: one training configuration (``TrainConfig`` fields), the
table row and column it fills, its quick (smoke) overrides and, where one is published, the
anchor it is compared with. ``gnnsys.experiments.bench`` runs them over seeds and prints the
table. Anchors (``/work/shared/REFERENCE.md``, "Accuracy anchors"):

- GCN on Planetoid, public split: Cora 81.5, CiteSeer 70.3 (Kipf & Welling, ICLR 2017);
- GAT on Planetoid: Cora 83.0, CiteSeer 72.5 (Velickovic et al., ICLR 2018);
- GIN-0, TU 10-fold CV: MUTAG 89.4, PROTEINS 76.2, NCI1 82.7, IMDB-BINARY 75.1 (Xu et al., ICLR 2019);
- ogbl-ddi Hits@20, OGB leaderboard: GraphSAGE 53.90 ± 4.74, GCN 37.07 ± 5.07.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Anchor:
    """A published figure (same metric and protocol as the case, in the metric's units)."""

    value: float
    source: str
    std: float | None = None


@dataclass
class Case:
    """One cell of a suite's table: ``row`` x ``column``, trained with ``config``."""

    row: str
    column: str
    config: dict[str, Any]
    quick: dict[str, Any] = field(default_factory=dict)
    anchor: Anchor | None = None
    seeds: int = 5  # default seed count (a TU case's one seed is a 10-fold CV run: 10 scores)
    needs: str | None = None  # an optional module the case needs

    @property
    def key(self) -> str:
        return f"{self.row}/{self.column}"


@dataclass
class TrainSuite:
    """A named list of cases; ``reference`` is the column the others are compared with."""

    name: str
    help: str
    cases: list[Case]
    reference: str | None = None
    doc: str | None = None  # where its results are discussed


GCN_PAPER = "Kipf & Welling 2017"
GAT_PAPER = "Velickovic et al. 2018"
GIN_PAPER = "Xu et al. 2019 (GIN-0)"
OGB_BOARD = "OGB leaderboard"

PLANETOID = {"Cora": "cora", "CiteSeer": "citeseer"}

# ----------------------------------------------------------------------------- node
#: Planetoid x GCN / GraphSAGE / GAT, public split, each at its paper's hyperparameters
#: (GAT: 8 heads x 8 features, dropout 0.6 on the inputs and on the attention coefficients,
#: lr 0.005; GCN: hidden 16, dropout 0.5, lr 0.01).
NODE_MODELS: dict[str, dict[str, Any]] = {
    "gcn": dict(layer="gcn", layers=2),
    "sage": dict(layer="sage", layers=2, hidden=64),
    "gat": dict(layer="gat", layers=2, hidden=64, layer_args={"heads": 8, "attn_dropout": 0.6}, dropout=0.6, lr=0.005),
}
NODE_ANCHORS = {("Cora", "gcn"): Anchor(0.815, GCN_PAPER), ("CiteSeer", "gcn"): Anchor(0.703, GCN_PAPER),
                ("Cora", "gat"): Anchor(0.830, GAT_PAPER, 0.007), ("CiteSeer", "gat"): Anchor(0.725, GAT_PAPER, 0.007)}
NODE = TrainSuite("node", "Planetoid (Cora, CiteSeer) x GCN / GraphSAGE / GAT, public split", [
    Case(row, model, dict(dataset=ds, **cfg), quick=dict(epochs=20), anchor=NODE_ANCHORS.get((row, model)))
    for row, ds in PLANETOID.items() for model, cfg in NODE_MODELS.items()])

# ---------------------------------------------------------------------------- graph
TU_ANCHORS = {"MUTAG": 0.894, "PROTEINS": 0.762, "NCI1": 0.827, "IMDB-BINARY": 0.751}
MOLECULES = ("ogbg-molbace", "ogbg-molbbbp", "ogbg-molesol", "ogbg-molfreesolv")
GRAPH = TrainSuite("graph", "TU (MUTAG, PROTEINS, NCI1, IMDB-BINARY) x GIN, 10-fold CV; OGB molecules x GIN", [
    *(Case(ds, "gin", dict(dataset=ds, layer="gin"), quick=dict(epochs=3, folds=2), anchor=Anchor(a, GIN_PAPER),
           seeds=1) for ds, a in TU_ANCHORS.items()),
    *(Case(ds, "gin", dict(dataset=ds, layer="gin", epochs=50), quick=dict(epochs=2), seeds=3) for ds in MOLECULES),
    # OGB's GIN for molecules: bond features enter every message
    Case("ogbg-molbace", "gine", dict(dataset="ogbg-molbace", layer="gine", epochs=50), quick=dict(epochs=2), seeds=3),
])

# ----------------------------------------------------------------------------- link
#: OGB's baselines (hidden 256, 2-layer MLP scorer, dropout 0.5, clipping 1.0) for 80 of their
#: 200 epochs, scored every 5 as OGB does (about 35 s an epoch on 2 CPU cores).
LINK = TrainSuite("link", "ogbl-ddi x GraphSAGE / GCN (OGB's baseline setting, Hits@20)", [
    Case("ogbl-ddi", model, dict(dataset="ogbl-ddi", layer=model, epochs=80, eval_every=5),
         quick=dict(epochs=1, eval_every=1, link_head="dot", hidden=32), anchor=Anchor(a, OGB_BOARD, s), seeds=1)
    for model, a, s in (("sage", 0.5390, 0.0474), ("gcn", 0.3707, 0.0507))])

# ------------------------------------------------------------------------ GraphSAINT
SAINT_SAMPLERS = ("saint-node", "saint-edge", "saint-rw", "saint-mrw")
SAINT = TrainSuite(
    "saint", "GraphSAINT: full batch vs each sampler, GCN x2 on Cora / CiteSeer (public split)",
    [Case(row, sampler, dict(dataset=ds, layer="gcn", sampler=sampler),
          quick=dict(epochs=10, saint_coverage=5.0), needs=None if sampler == "full" else "gnnsys.samplers.saint")
     for row, ds in PLANETOID.items() for sampler in ("full", *SAINT_SAMPLERS)],
    reference="full", doc="docs/graphsaint.md")

# ----------------------------------------------------------------------------- Virgo
VIRGO_INITS = ("virgo", "xavier", "kaiming", "default")
#: (row, dataset, overrides, quick overrides, seeds): the Virgo table's rows.
VIRGO_ROWS: list[tuple[str, str, dict[str, Any], dict[str, Any], int]] = [
    ("cora-gcn3", "cora", dict(layer="gcn", layers=3), dict(epochs=100), 5),
    ("cora-gcn8", "cora", dict(layer="gcn", layers=8), dict(epochs=100), 5),
    ("citeseer-gcn3", "citeseer", dict(layer="gcn", layers=3), dict(epochs=100), 5),
    ("citeseer-gcn8", "citeseer", dict(layer="gcn", layers=8), dict(epochs=100), 5),
    # GraphSAINT random walks, unseen edges with the original's 1e4 clip (the table's "defaults"
    # row was measured when clip was the default) and counted once (today's default)
    ("cora-gcn3-saint", "cora", dict(layer="gcn", layers=3, sampler="saint-rw", saint_unseen_edges="clip"),
     dict(epochs=30, saint_coverage=10.0), 5),
    ("cora-gcn3-saint-once", "cora", dict(layer="gcn", layers=3, sampler="saint-rw", saint_unseen_edges="once"),
     dict(epochs=30, saint_coverage=10.0), 5),
    ("mutag-gin", "MUTAG", dict(layer="gin"), dict(epochs=30, folds=3), 1),
    ("molbace-gin", "ogbg-molbace", dict(layer="gin", epochs=30), dict(epochs=3), 3),
    ("ddi-sage", "ogbl-ddi", dict(layer="sage", epochs=10, eval_every=2), dict(epochs=1), 2),
]
VIRGO = TrainSuite(
    "virgo", "Virgo vs Xavier vs Kaiming vs each layer's own initialization",
    [Case(row, init, dict(dataset=ds, init=init, **over), quick=quick, seeds=seeds,
          needs="gnnsys.samplers.saint" if "sampler" in over else None)
     for row, ds, over, quick, seeds in VIRGO_ROWS for init in VIRGO_INITS],
    reference="default", doc="docs/virgo.md")

# ------------------------------------------------------------------------ ForwardGNN
FORWARD_NODE_METHODS = ("backprop", "sf", "ff-la", "ff-vn", "sf-top2input", "sf-top2loss")


def forward_config(dataset: str, method: str, layer: str = "gcn", layers: int = 2) -> dict[str, Any]:
    """The ``TrainConfig`` fields of one ForwardGNN-suite case: the paper's protocol (hidden
    128, Adam lr 1e-3, weight decay 5e-4, a random 64/16/20 split per seed) for every method,
    backprop included."""
    base = dict(dataset=dataset, layer=layer, layers=layers, split="random", hidden=128, lr=1e-3, weight_decay=5e-4)
    if method == "backprop":
        return dict(base, dropout=0.5)
    return dict(base, trainer="forward", forward_variant=method)


FORWARD = TrainSuite(
    "forwardgnn", "ForwardGNN: every node variant vs backprop, GCN x2 on Cora / CiteSeer (random splits)",
    [Case(row, m, forward_config(ds, m), quick=dict(epochs=20, patience=10)) for row, ds in PLANETOID.items()
     for m in FORWARD_NODE_METHODS],
    reference="backprop", doc="docs/forwardgnn.md")

#: Every training suite, by name (``gnnsys bench NAME``).
TRAIN_SUITES: dict[str, TrainSuite] = {s.name: s for s in (NODE, GRAPH, LINK, SAINT, VIRGO, FORWARD)}


def suite_cases(name: str) -> list[Case]:
    """The cases of suite ``name``."""
    return TRAIN_SUITES[name].cases


def find_case(suite: str, key: str) -> Case:
    """The case ``ROW/COLUMN`` of suite ``suite`` (``KeyError`` naming the known keys)."""
    for c in TRAIN_SUITES[suite].cases:
        if c.key == key:
            return c
    raise KeyError(f"suite {suite} has no case {key!r}; cases: {[c.key for c in TRAIN_SUITES[suite].cases]}")
