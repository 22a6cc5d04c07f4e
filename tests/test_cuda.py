"""The CUDA paths (``--device cuda``, ``graph.to("cuda")``): skipped on machines without a GPU.

Each test runs the same job as a CPU test elsewhere in the suite, holds it to the same bar,
and checks that the work really happened on the device. ``GNNSYS_TEST_DEVICE`` picks another
device (``GNNSYS_TEST_DEVICE=cpu pytest tests/test_cuda.py`` checks the tests themselves)."""

import os

import pytest
import torch

from gnnsys import Dataset, Graph, load_dataset
from gnnsys.api import train
from gnnsys.config import TrainConfig

DEVICE = os.environ.get("GNNSYS_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(),
                                reason="no CUDA device on this machine")


def on_device(t: torch.Tensor) -> bool:
    return t.device.type == torch.device(DEVICE).type


def test_node_training_on_cuda():
    res = train(TrainConfig(dataset="synthetic-sbm", epochs=60, quiet=True, device=DEVICE))
    assert res["test"] > 0.85  # the CPU test's bar (test_train.py)
    cpu = train(TrainConfig(dataset="synthetic-sbm", epochs=60, quiet=True))
    assert abs(res["test"] - cpu["test"]) < 0.05


def test_graph_training_on_cuda():
    res = train(TrainConfig(dataset="synthetic-graphs", epochs=30, quiet=True, layers=3, hidden=32, device=DEVICE))
    assert res["test"] >= 0.85


def test_link_training_on_cuda():
    g = torch.Generator().manual_seed(0)
    und = (torch.rand(200, 200, generator=g) < 0.05).triu(1).nonzero().t()
    k = und.size(1) // 10
    val, test, tr = und[:, :k], und[:, k:2 * k], und[:, 2 * k:]
    neg = lambda m: torch.randint(0, 200, (2, m), generator=g)  # noqa: E731
    ds = Dataset(name="dense-link", task="link", graph=Graph.from_edge_index(tr, 200, make_undirected=True),
                 features=None, labels=None, num_classes=1, metric="rocauc",
                 split={"train": tr, "valid": val, "valid_neg": neg(k), "test": test, "test_neg": neg(k)})
    res = train(TrainConfig(dataset="dense-link", epochs=20, quiet=True, hidden=32, batch_size=256,
                            device=DEVICE), ds)
    assert res["task"] == "link" and 0.0 <= res["test"] <= 1.0


def test_model_and_batches_live_on_cuda():
    from gnnsys import MiniBatch
    from gnnsys.api import initialize, model_for

    ds = load_dataset("synthetic-sbm")
    cfg = TrainConfig(dataset="synthetic-sbm", init="virgo").resolved(ds.name, ds.task)
    model = model_for(ds, cfg).to(DEVICE)
    initialize(model, ds, cfg)
    assert all(on_device(p) and torch.isfinite(p).all() for p in model.parameters())
    out = model(MiniBatch.full(ds, DEVICE))
    assert on_device(out) and out.shape == (ds.num_nodes, ds.num_classes)


@pytest.mark.parametrize("name", ["saint-node", "saint-edge", "saint-rw", "saint-mrw"])
def test_saint_samples_on_cuda(name):
    from gnnsys.samplers import (
        SaintEdgeSampler,
        SaintMultiDimRandomWalkSampler,
        SaintNodeSampler,
        SaintRandomWalkSampler,
    )

    ds = load_dataset("synthetic-sbm")
    g = ds.graph.to(DEVICE)
    make = {
        "saint-node": lambda: SaintNodeSampler(g, 300, seed=0),
        "saint-edge": lambda: SaintEdgeSampler(g, 200, seed=0),
        "saint-rw": lambda: SaintRandomWalkSampler(g, 100, 2, seed=0),
        "saint-mrw": lambda: SaintMultiDimRandomWalkSampler(g, 300, 50, seed=0),
    }[name]
    sampler = make()
    b = sampler.sample()
    assert on_device(b.node_ids) and on_device(b.edge_index)
    assert b.node_ids.unique().numel() == b.node_ids.numel()
    # the induced subgraph: every local edge is a graph edge between sampled nodes
    src, dst = b.node_ids[b.edge_index[0]].cpu(), b.node_ids[b.edge_index[1]].cpu()
    ei = ds.graph.to_edge_index()
    nodes = b.node_ids.cpu()
    inside = torch.isin(ei[0], nodes) & torch.isin(ei[1], nodes)
    assert sorted(zip(src.tolist(), dst.tolist())) == sorted(zip(*ei[:, inside].tolist()))
    assert torch.equal(torch.sort(b.edge_ids.cpu()).values, inside.nonzero().flatten())
    again = make().sample()
    assert torch.equal(again.node_ids, b.node_ids)  # same seed, same subgraph
    # a group of subgraphs drawn together equals the same subgraphs drawn one by one
    group = sampler.sample_at(range(5))
    for k in (0, 3):
        one = sampler.sample_at([k])[0]
        assert torch.equal(one.node_ids, group[k].node_ids) and torch.equal(one.edge_ids, group[k].edge_ids)


def test_saint_training_on_cuda():
    res = train(TrainConfig(dataset="synthetic-sbm", epochs=30, quiet=True, sampler="saint-rw", saint_roots=200,
                            saint_coverage=5.0, device=DEVICE))
    assert res["test"] > 0.8


def test_forward_trainer_on_cuda():
    res = train(TrainConfig(dataset="synthetic-sbm", trainer="forward", forward_variant="sf", epochs=30,
                            quiet=True, device=DEVICE))
    assert res["test"] > 0.8
