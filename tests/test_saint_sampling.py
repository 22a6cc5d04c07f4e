"""GraphSAINT samplers: induced subgraphs, both backends, determinism, epochs, DataLoader."""

from __future__ import annotations

import math

import pytest
import torch
from gnnsys.samplers.saint_induce import OrientedAdjacency
from test_saint_helpers import KINDS, global_edges, make, small_graph
from torch.utils.data import DataLoader

from gnnsys.batch import MiniBatch


@pytest.fixture(scope="module")
def graph():
    return small_graph()


def _edge_set(g, b) -> set[int]:
    return set(b.edge_ids.tolist())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["train", "full"])
def test_induced_subgraph_matches_reference(graph, kind, mode):
    train = torch.arange(0, graph.num_nodes, 2)
    s = make(kind, graph, train_nodes=train, seed=1, graph_mode=mode)
    for b in s.sample_at(range(6)):
        assert isinstance(b, MiniBatch)
        nodes = b.node_ids
        assert torch.equal(nodes, torch.unique(nodes)), "node ids unique and sorted"
        if mode == "train":
            assert bool(torch.isin(nodes, train).all())
        # every edge of the graph among the nodes, each exactly once, with its global id
        _, ref_pos = graph.subgraph(nodes)
        assert sorted(b.edge_ids.tolist()) == sorted(ref_pos.tolist())
        mapped, named = global_edges(graph, b)
        assert torch.equal(mapped, named)
        # targets: local indices of training nodes
        assert torch.equal(b.node_ids[b.target], nodes[torch.isin(nodes, train)])
        assert b.edge_weight is None and b.loss_weight is None


@pytest.mark.parametrize("kind", KINDS)
def test_torch_backend_gives_the_same_kind_of_subgraphs(graph, kind):
    """The pure-torch path (what runs on CUDA) induces exactly the same subgraph as the
    numba kernel for the same node set."""
    s = make(kind, graph, seed=2, backend="torch")
    for b in s.sample_at(range(4)):
        _, ref_pos = graph.subgraph(b.node_ids)
        assert sorted(b.edge_ids.tolist()) == sorted(ref_pos.tolist())
        mapped, named = global_edges(graph, b)
        assert torch.equal(mapped, named)


def test_oriented_layouts_agree(graph):
    """Kernel-built (paired) and torch-built (directed) oriented adjacencies induce the same
    edges, with both inducers; directed graphs too."""
    directed = small_graph(40, 120, seed=5)
    ei = directed.to_edge_index()
    keep = torch.rand(ei.size(1), generator=torch.Generator().manual_seed(0)) < 0.7
    from gnnsys.graph import Graph

    directed = Graph.from_edge_index(ei[:, keep], 40)
    from gnnsys.samplers.saint_induce import GroupInducer

    for g in (graph, directed):
        a_k = OrientedAdjacency.build(g, use_kernel=True)
        a_t = OrientedAdjacency.build(g, use_kernel=False)
        assert a_t.partner.numel() == g.num_edges
        ind_k, ind_t = GroupInducer(a_k, use_kernel=True), GroupInducer(a_t, use_kernel=False)
        ind_kt = GroupInducer(a_k, use_kernel=False)  # torch inducer on the paired layout (CUDA's)
        gen = torch.Generator().manual_seed(3)
        draws = [torch.randint(0, g.num_nodes, (15,), generator=gen) for _ in range(5)]
        for rk, rt, rkt, r2 in zip(ind_k.induce([d.numpy() for d in draws]), ind_t.induce(draws),
                                   ind_kt.induce(draws), a_k.induce_torch_group(torch.stack(draws))):
            for r in (rt, rkt, r2):
                assert torch.equal(rk[0], r[0])
            _, ref = g.subgraph(rk[0])
            for r in (rk, rt, rkt, r2):
                assert sorted(r[2].tolist()) == sorted(ref.tolist())
                # local endpoints agree with the edge ids
                assert torch.equal(rk[0][r[1]], g.to_edge_index()[:, r[2]])
        # the count-only kernel (pre-sampling): the same nodes and edges, no row pointer
        arrays = [d.numpy() for d in draws]
        for rk, ru in zip(ind_k.induce(arrays), ind_k.induce(arrays, csr=False)):
            assert torch.equal(rk[0], ru[0]) and ru[3] is None
            assert sorted(ru[2].tolist()) == sorted(rk[2].tolist())
            assert torch.equal(ru[0][ru[1]], g.to_edge_index()[:, ru[2]])


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_subgraphs(graph, kind):
    a = make(kind, graph, seed=7, group_size=3)
    b = make(kind, graph, seed=7, group_size=5, num_threads=1)
    c = make(kind, graph, seed=8)
    ba, bb, bc = list(a), list(b), list(c)
    assert len(ba) == len(bb)
    for x, y in zip(ba, bb):
        assert torch.equal(x.node_ids, y.node_ids) and torch.equal(x.edge_ids, y.edge_ids)
        assert torch.equal(x.edge_index, y.edge_index)
    assert any(not torch.equal(x.node_ids, z.node_ids) for x, z in zip(ba, bc))
    # the next epoch continues the stream with new subgraphs
    nxt = list(a)
    assert not all(torch.equal(x.node_ids, y.node_ids) for x, y in zip(ba, nxt))


def test_epoch_length_is_train_over_expected_size(graph):
    s = make("node", graph)
    p = s.probabilities()
    expected = float((1 - (1 - p) ** s.budget).sum())
    assert len(s) == math.ceil(graph.num_nodes / expected)
    assert len(list(s)) == len(s)
    assert len(make("rw", graph, num_subgraphs=3)) == 3
    s.compute_normalization(20)
    mean = s.stats.train_nodes_sampled / s.stats.num_subgraphs
    assert len(s) == math.ceil(graph.num_nodes / mean)


def test_sample_returns_next_subgraph(graph):
    s = make("edge", graph, seed=4)
    b0, b1 = s.sample(), s.sample()
    ref = make("edge", graph, seed=4).sample_at([0, 1])
    assert torch.equal(b0.node_ids, ref[0].node_ids) and torch.equal(b1.node_ids, ref[1].node_ids)


def test_batches_carry_features_and_labels_through_the_pipeline(graph):
    from gnnsys.storage import InMemoryFeatureStore

    from gnnsys.loading import FetchFeatures, LoadingPipeline

    x = torch.randn(graph.num_nodes, 5)
    y = torch.randint(0, 3, (graph.num_nodes,))
    s = make("rw", graph, num_subgraphs=3)
    assert s.sample_at([0])[0].x is None  # samplers produce subgraphs only
    got = list(LoadingPipeline(s, fetch=FetchFeatures(InMemoryFeatureStore(x), y)))
    ref = make("rw", graph, num_subgraphs=3).sample_at([0, 1, 2])
    assert len(got) == 3
    for b, r in zip(got, ref):
        assert torch.equal(b.node_ids, r.node_ids) and torch.equal(b.edge_index, r.edge_index)
        assert torch.equal(b.x, x[b.node_ids]) and torch.equal(b.y, y[b.node_ids])


def test_dataloader_with_workers_gives_the_same_epoch(graph):
    s = make("mrw", graph, seed=3, num_subgraphs=6)
    ref = list(make("mrw", graph, seed=3, num_subgraphs=6))
    got = list(DataLoader(s, batch_size=None, num_workers=2))
    assert len(got) == 6
    for x, y in zip(got, ref):
        assert torch.equal(x.node_ids, y.node_ids) and torch.equal(x.edge_ids, y.edge_ids)
    # the epoch helper advances the stream like in-process iteration
    loader = make("mrw", graph, seed=3, num_subgraphs=6).dataloader(num_workers=2)
    e0, e1 = list(loader), list(loader)
    ref2 = make("mrw", graph, seed=3, num_subgraphs=6)
    r0, r1 = list(ref2), list(ref2)
    assert all(torch.equal(a.node_ids, b.node_ids) for a, b in zip(e0 + e1, r0 + r1))
