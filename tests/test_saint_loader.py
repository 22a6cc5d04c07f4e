"""``make_saint_loader``: the sampler a ``TrainConfig`` names, normalization computed or
loaded, node and link datasets."""

from __future__ import annotations

import pytest
import torch
from gnnsys.samplers import SAINT_SAMPLERS, make_saint_loader
from gnnsys.samplers.saint import default_budgets

from gnnsys.config import TrainConfig
from gnnsys.dataset import Dataset
from gnnsys.datasets.loaders.synthetic import load_sbm, sbm_graph
from gnnsys.errors import ConfigError
from gnnsys.loading import LoadingPipeline


@pytest.fixture(scope="module")
def sbm():
    return load_sbm("synthetic-sbm", num_nodes=600, seed=0)


@pytest.mark.parametrize("name", sorted(SAINT_SAMPLERS))
def test_builds_each_sampler_with_normalization(sbm, name):
    cfg = TrainConfig(sampler=name, saint_coverage=5, seed=1)
    s = make_saint_loader(sbm, cfg)
    assert isinstance(s, SAINT_SAMPLERS[name]) and s.stats is not None
    assert s.graph_mode == "full" and s.num_train == sbm.split["train"].numel()
    b = next(iter(s))
    assert b.x is None and b.y is None  # the sampler gives the subgraph only: the pipeline fetches
    b = next(iter(LoadingPipeline(s, sbm)))
    assert torch.equal(b.x, sbm.features.gather(b.node_ids)) and torch.equal(b.y, sbm.labels[b.node_ids])
    train = torch.zeros(600, dtype=torch.bool)
    train[sbm.split["train"]] = True
    assert bool(train[b.node_ids[b.target]].all())
    assert b.loss_weight.shape == b.target.shape and b.edge_weight.shape == (b.num_edges,)


def test_config_budgets_and_graph_mode(sbm):
    cfg = TrainConfig(sampler="saint-rw", saint_roots=17, saint_walk_length=3, saint_graph="train",
                      saint_coverage=2)
    s = make_saint_loader(sbm, cfg)
    assert (s.num_roots, s.walk_length, s.graph_mode) == (17, 3, "train")
    s = make_saint_loader(sbm, TrainConfig(sampler="saint-mrw", saint_budget=50, saint_frontier=20,
                                           saint_coverage=2))
    assert (s.budget, s.frontier_size) == (50, 20)
    assert s.unseen_edges == "once"  # unseen edges counted once by default (issue 17)
    s = make_saint_loader(sbm, TrainConfig(sampler="saint-edge", saint_unseen_edges="clip", saint_coverage=2))
    assert s.unseen_edges == "clip"  # the paper-exact option
    with pytest.raises(ConfigError, match="saint-unseen-edges"):
        TrainConfig(sampler="saint-edge", saint_unseen_edges="zero").validate()
    assert default_budgets("saint-node", 10**6, 10**6) == {"budget": 8000}
    assert default_budgets("saint-rw", 10**6, 10**6) == {"num_roots": 3000}
    with pytest.raises(ConfigError, match="saint-graph"):
        make_saint_loader(sbm, TrainConfig(sampler="saint-node", saint_graph="both"))
    with pytest.raises(ConfigError, match="not a GraphSAINT sampler"):
        make_saint_loader(sbm, TrainConfig(sampler="full"))


def test_norm_cache_is_saved_then_loaded(sbm, tmp_path, monkeypatch):
    path = tmp_path / "stats" / "sbm-node.pt"
    cfg = TrainConfig(sampler="saint-node", saint_coverage=3, saint_norm_cache=str(path))
    a = make_saint_loader(sbm, cfg)
    assert path.exists()

    def boom(*args, **kw):
        raise AssertionError("pre-sampled again")

    from gnnsys.samplers.saint_base import SaintSampler

    monkeypatch.setattr(SaintSampler, "compute_normalization", boom)
    b = make_saint_loader(sbm, cfg)
    assert torch.equal(a.stats.edge_count, b.stats.edge_count)
    assert torch.equal(next(iter(a)).edge_weight, next(iter(b)).edge_weight)
    monkeypatch.undo()
    with pytest.warns(UserWarning, match="recomputing"):  # another budget: recomputed, saved
        c = make_saint_loader(sbm, TrainConfig(sampler="saint-node", saint_budget=99, saint_coverage=3,
                                               saint_norm_cache=str(path)))
    assert c.budget == 99


def test_link_dataset_batches_have_positive_and_negative_pairs():
    g, _, _ = sbm_graph(300, seed=3)
    ei = g.to_edge_index()
    pairs = ei[:, ei[0] < ei[1]]
    ds = Dataset(name="toy-link", task="link", graph=g, features=None, labels=None,
                 split={"train": pairs}, num_classes=1, metric="hits@20")
    s = make_saint_loader(ds, TrainConfig(sampler="saint-edge", saint_coverage=3))
    for b in s.sample_at(range(3)):
        assert b.x is None and b.target is None and b.loss_weight is None
        assert b.pos_edges.shape == b.neg_edges.shape and b.pos_edges.size(1) > 0
        gp = b.node_ids[b.pos_edges]
        assert bool((gp[0] < gp[1]).all())
        key = set((pairs[0] * 300 + pairs[1]).tolist())
        assert set((gp[0] * 300 + gp[1]).tolist()) <= key
        # every training pair inside the subgraph is a positive
        inside = torch.isin(pairs, b.node_ids).all(0)
        assert int(inside.sum()) == b.pos_edges.size(1)
        assert int(b.neg_edges.max()) < b.num_nodes
        # negatives are non-edges of the graph and not self-loops (checked on global ids)
        gn = b.node_ids[b.neg_edges]
        assert bool((gn[0] != gn[1]).all())
        assert not (set((gn[0] * 300 + gn[1]).tolist()) & set((ei[0] * 300 + ei[1]).tolist()))
    with pytest.raises(ConfigError, match="graph classification"):
        make_saint_loader(Dataset(name="g", task="graph", graph=g, features=None,
                                  labels=torch.zeros(1, dtype=torch.long), split={}, num_classes=2,
                                  graph_ptr=torch.tensor([0, 300])), TrainConfig(sampler="saint-node"))
