"""GraphSAINT normalization: the counts and formulas, pre-sampled subgraphs reused as the
first batches, save/load, and Monte Carlo checks that the estimators are unbiased."""

from __future__ import annotations

import warnings

import pytest
import torch
from gnnsys.samplers.saint_norm import SaintMiniBatch, SaintStatistics
from test_saint_helpers import KINDS, make, small_graph

from gnnsys.errors import ConfigError
from gnnsys.sparse import propagation_matrix


@pytest.fixture(scope="module")
def graph():
    return small_graph(60, 240, seed=0)


def test_formulas_with_zero_counts_and_clip():
    st = SaintStatistics(4, 4)
    st.num_subgraphs = 10
    st.node_count = torch.tensor([5, 0, 10, 2], dtype=torch.int32)
    st.edge_count = torch.tensor([1, 0, 0, 2], dtype=torch.int32)
    dst = torch.tensor([2, 1, 0, 3])  # aggregating node of each edge
    w = st.edge_norm(dst)
    assert torch.allclose(w, torch.tensor([10.0, 0.1, 1e4, 1.0]))  # ratio, 0/0 -> 0.1, x/0 -> clip
    st.edge_count = torch.tensor([1, 0, 0, 1], dtype=torch.int32)
    st.node_count[3] = 100000
    assert float(st.edge_norm(dst)[3]) == 1e4  # clipped at 1e4
    mask = torch.tensor([True, True, False, True])
    lw = st.loss_norm(mask)
    assert torch.allclose(lw, torch.tensor([10 / 5 / 3, 10 / 0.1 / 3, 0.0, 10 / 100000 / 3]))


def test_unseen_edges_counted_once():
    st = SaintStatistics(4, 4)
    st.num_subgraphs = 10
    st.node_count = torch.tensor([5, 0, 10, 2], dtype=torch.int32)
    st.edge_count = torch.tensor([1, 0, 0, 2], dtype=torch.int32)
    dst = torch.tensor([2, 1, 0, 3])
    # an edge never seen whose node was (C_uv = 0 < C_v) weighs C_v instead of the clip
    assert torch.allclose(st.edge_norm(dst, "once"), torch.tensor([10.0, 0.1, 5.0, 1.0]))
    with pytest.raises(ConfigError, match="unseen"):
        st.edge_norm(dst, "drop")


@pytest.mark.parametrize("kind", KINDS)
def test_unseen_edge_rate_predicts_later_subgraphs(kind):
    """Good-Turing: edges counted once / N estimates how many edges of a later subgraph
    pre-sampling never saw. Tolerance 30% (measured ratios over 3 seeds: 0.94-1.20)."""
    g = small_graph(400, 1600, seed=1)
    s = make(kind, g, train_nodes=torch.arange(0, 400, 4), graph_mode="full", seed=0, unseen_edges="clip")
    with pytest.warns(UserWarning, match="never saw"):
        s.compute_normalization(3)
    zero = s.stats.edge_count == 0
    m = 400
    observed = sum(int(zero[b.edge_ids].sum()) for b in s.sample_at(range(10_000, 10_000 + m))) / m
    assert observed > 5  # low coverage: unseen edges are common here
    assert abs(s.stats.unseen_edge_rate() / observed - 1) < 0.3
    # "clip" gives them the original's 1e4 (0.1 where C_v = 0 too); "once" gives C_v and does not warn
    seen_dst = s.stats.node_count[g.indices] > 0
    b = s.sample_at([10_000])[0]
    z = (zero & seen_dst)[b.edge_ids]
    assert z.any() and bool((b.edge_weight[z] == 1e4).all())
    once = make(kind, g, train_nodes=torch.arange(0, 400, 4), graph_mode="full", seed=0, unseen_edges="once")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        once.compute_normalization(3)
    assert not [w for w in caught if "never saw" in str(w.message)]
    b = once.sample_at([10_000])[0]
    v = g.indices[b.edge_ids[z]]
    assert z.any() and torch.equal(b.edge_weight[z], once.stats.node_count[v].float())
    assert torch.equal(b.edge_weight[~z], s.sample_at([10_000])[0].edge_weight[~z])


def test_unseen_edges_option_is_checked(graph):
    with pytest.raises(ConfigError, match="unseen_edges"):
        make("node", graph, unseen_edges="zero")


@pytest.mark.parametrize("kind", KINDS)
def test_batches_carry_the_weights_of_the_counts(graph, kind):
    train = torch.arange(0, 60, 2)
    s = make(kind, graph, train_nodes=train, graph_mode="full", seed=3).compute_normalization(10)
    st = s.stats
    assert st.train_nodes_sampled >= 10 * 30
    # the counts are those of the first N subgraphs of the stream
    ref = make(kind, graph, train_nodes=train, graph_mode="full", seed=3)
    cv = torch.zeros(60, dtype=torch.int32)
    cuv = torch.zeros(graph.num_edges, dtype=torch.int32)
    for b in ref.sample_at(range(st.num_subgraphs)):
        cv[b.node_ids] += 1
        cuv[b.edge_ids] += 1
    assert torch.equal(cv, st.node_count) and torch.equal(cuv, st.edge_count)
    # the first epoch is made of the pre-sampled subgraphs, with the weights
    first = next(iter(s))
    b0 = ref.sample_at([0])[0]
    assert torch.equal(first.node_ids, b0.node_ids) and torch.equal(first.edge_ids, b0.edge_ids)
    v = graph.indices[first.edge_ids]
    assert torch.allclose(first.edge_weight, (cv[v].double() / cuv[first.edge_ids].double()).float())
    t = first.node_ids[first.target]
    assert torch.allclose(first.loss_weight, (st.num_subgraphs / cv[t].double() / 30).float())
    assert isinstance(first, SaintMiniBatch) and torch.equal(first.norm_degree, graph.degree()[first.node_ids].float())


def test_presampled_subgraphs_are_served_from_memory(graph):
    s = make("node", graph, seed=5).compute_normalization(5)
    n = s.stats.num_subgraphs
    assert set(range(n)) <= set(s._cache)
    batches = list(s)
    assert len(batches) == len(s) and not set(range(len(s))) & set(s._cache)
    s2 = make("node", graph, seed=5, cache_limit_bytes=0).compute_normalization(5)
    assert not s2._cache
    for a, b in zip(batches, s2):  # re-drawn identically when not kept
        assert torch.equal(a.edge_ids, b.edge_ids) and torch.equal(a.edge_weight, b.edge_weight)
    # a cache that fills part way: the rest is only counted (no CSR order built), same counts
    # and the same batches, in the same edge order
    s3 = make("node", graph, seed=5, cache_limit_bytes=6000, group_size=2).compute_normalization(5)
    assert 0 < len(s3._cache) < n
    assert torch.equal(s3.stats.node_count, s.stats.node_count)
    assert torch.equal(s3.stats.edge_count, s.stats.edge_count)
    for a, b in zip(batches, s3):
        assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.csr_ptr, b.csr_ptr)
        assert torch.equal(a.edge_weight, b.edge_weight)


def test_statistics_reject_ids_out_of_range():
    st = SaintStatistics(4, 3)
    with pytest.raises(IndexError, match="outside"):
        st.add(torch.tensor([0, 4]), torch.tensor([0]))
    with pytest.raises(IndexError, match="outside"):
        st.add(torch.tensor([0]), torch.tensor([-1]))
    st.add(torch.tensor([0, 3, 3]), torch.tensor([2]))  # repeats counted
    assert st.node_count.tolist() == [1, 0, 0, 2] and st.edge_count.tolist() == [0, 0, 1]


def test_save_and_load(graph, tmp_path):
    s = make("rw", graph, seed=2).compute_normalization(5)
    path = tmp_path / "norm.pt"
    s.save_normalization(path)
    t = make("rw", graph, seed=2).load_normalization(path)
    assert torch.equal(s.stats.node_count, t.stats.node_count)
    assert torch.equal(next(iter(s)).edge_weight, next(iter(t)).edge_weight)
    with pytest.raises(ConfigError, match="different setup"):
        make("rw", graph, seed=2, num_roots=9).load_normalization(path)
    with pytest.raises(ConfigError, match="does not exist"):
        make("rw", graph).load_normalization(tmp_path / "missing.pt")
    with pytest.raises(ConfigError, match="compute_normalization"):
        make("rw", graph).save_normalization(path)


def _monte_carlo(s, x: torch.Tensor, loss: torch.Tensor, start: int, count: int):
    n = x.numel()
    agg = torch.zeros(n, dtype=torch.float64)
    hits = torch.zeros(n, dtype=torch.float64)
    losses = []
    for k0 in range(start, start + count, 64):
        for b in s.sample_at(range(k0, k0 + 64)):
            src, dst = b.node_ids[b.edge_index[0]], b.node_ids[b.edge_index[1]]
            agg.index_add_(0, dst, x[src] * b.edge_weight.double())
            hits[b.node_ids] += 1
            losses.append(float((b.loss_weight.double() * loss[b.node_ids[b.target]]).sum()))
    return agg / hits.clamp_min(1), hits, torch.tensor(losses)


@pytest.mark.parametrize("kind", KINDS)
def test_estimators_are_unbiased(graph, kind):
    """Over fresh subgraphs: mean of Σ_u x_u·w_uv over subgraphs containing v ≈ Σ_{u∈N(v)} x_u
    (median relative error < 3%, every node seen >= 200 times < 12%), and the mean of
    Σ loss_weight·ℓ ≈ mean training loss (< 3%). The error left is Monte Carlo noise plus
    the noise of the pre-sampled counts (coverage 1500 here; a few percent at most)."""
    train = torch.arange(0, 60, 2)
    s = make(kind, graph, train_nodes=train, graph_mode="full", seed=9).compute_normalization(1500)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(60, generator=gen, dtype=torch.float64) + 0.5
    loss = torch.rand(60, generator=gen, dtype=torch.float64) + 0.1
    est, hits, losses = _monte_carlo(s, x, loss, s.stats.num_subgraphs + 10, 3200)
    ei = graph.to_edge_index()
    exact = torch.zeros(60, dtype=torch.float64).index_add_(0, ei[1], x[ei[0]])
    ok = hits >= 200
    assert ok.sum() >= 30
    rel = ((est - exact).abs() / exact)[ok]
    assert float(rel.median()) < 0.03, rel
    assert float(rel.max()) < 0.12, rel
    assert abs(float(losses.mean()) / float(loss[train].mean()) - 1) < 0.03


def _operator_rows(b, x: torch.Tensor, norm: str) -> torch.Tensor:
    """(P x) over the batch nodes for the original's operator, written out with index_add."""
    src, dst = b.edge_index
    w, d = b.edge_weight.double(), b.norm_degree.double()
    xs = x[b.node_ids]
    if norm == "mean":
        coef = w / d[dst]
        return torch.zeros_like(xs).index_add_(0, dst, coef * xs[src])
    dh = d + 1
    coef = w / (dh[src] * dh[dst]).sqrt()
    return torch.zeros_like(xs).index_add_(0, dst, coef * xs[src]) + xs / dh


def test_graph_degree_operator_is_unbiased(graph):
    """``SaintMiniBatch.adj`` ("mean", "gcn") uses the sampling-graph degree, as the original;
    averaged over subgraphs containing v it ≈ the full-graph operator applied to x."""
    s = make("edge", graph, seed=4).compute_normalization(1000)
    x = torch.rand(60, generator=torch.Generator().manual_seed(1), dtype=torch.float64) + 0.5
    start = s.stats.num_subgraphs + 10
    for b in s.sample_at(range(start, start + 3)):  # the operator is exactly that
        for norm in ("mean", "gcn"):
            got = b.adj(norm).to(torch.float64) @ x[b.node_ids].unsqueeze(1)
            assert torch.allclose(got[:, 0], _operator_rows(b, x, norm), atol=1e-5)
    full = {norm: (propagation_matrix(graph.to_edge_index(), 60, None, norm).to(torch.float64)
                   @ x.unsqueeze(1))[:, 0] for norm in ("mean", "gcn")}
    sums = {norm: torch.zeros(60, dtype=torch.float64) for norm in full}
    hits = torch.zeros(60, dtype=torch.float64)
    for k0 in range(start, start + 3000, 64):
        for b in s.sample_at(range(k0, k0 + 64)):
            hits[b.node_ids] += 1
            for norm in full:
                sums[norm][b.node_ids] += _operator_rows(b, x, norm)
    ok = hits >= 200
    for norm in full:
        rel = ((sums[norm] / hits.clamp_min(1) - full[norm]).abs() / full[norm])[ok]
        assert float(rel.median()) < 0.03 and float(rel.max()) < 0.12, (norm, rel)
    # moving a batch keeps the original's operator
    b = s.sample_at([start])[0]
    moved = b.to("cpu")
    assert isinstance(moved, SaintMiniBatch) and torch.equal(moved.norm_degree, b.norm_degree)


def test_subgraph_aggr_norm_gives_plain_minibatch_operators(graph):
    s = make("node", graph, aggr_norm="subgraph").compute_normalization(5)
    b = s.sample()
    assert b.norm_degree is None
    ref = propagation_matrix(b.edge_index, b.num_nodes, b.edge_weight, "mean")
    assert torch.allclose(b.adj("mean").to_dense(), ref.to_dense())
