"""Shared fixtures. ``data_root``: the real-data folder (``$GNNSYS_DATA``, default the
``shared/data`` folder beside the repository); tests needing it skip when it is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real-data folder; skips the test when it does not exist."""
    root = Path(os.environ.get("GNNSYS_DATA") or DEFAULT_DATA)
    if not root.is_dir():
        pytest.skip(f"real-data folder {root} not found (set GNNSYS_DATA to the shared data folder)")
    return root


@pytest.fixture
def sbm_link_dataset():
    """A link task on the embedded SBM graph: a tenth of its undirected edges each for
    validation and test, uniform random pairs as their negatives (seeded)."""
    import torch

    from gnnsys import Dataset, Graph, InMemoryFeatureStore, load_dataset

    base = load_dataset("synthetic-sbm")
    g = torch.Generator().manual_seed(0)
    ei = base.graph.to_edge_index()
    und = ei[:, ei[0] < ei[1]]
    perm = torch.randperm(und.size(1), generator=g)
    k = und.size(1) // 10
    val, test, tr = und[:, perm[:k]], und[:, perm[k:2 * k]], und[:, perm[2 * k:]]
    graph = Graph.from_edge_index(tr, base.num_nodes, make_undirected=True)
    neg = lambda m: torch.randint(0, base.num_nodes, (2, m), generator=g)  # noqa: E731
    return Dataset(name="sbm-link", task="link", graph=graph, features=InMemoryFeatureStore(base.features.all()),
                   labels=None, split={"train": tr, "valid": val, "valid_neg": neg(k), "test": test,
                                       "test_neg": neg(k)}, num_classes=1, metric="rocauc")
