"""ForwardGNN trainers: every variant trains, no gradient crosses a layer boundary, every
registry layer and a user's own layer work, subgraph batches work, bad input is refused."""

from __future__ import annotations

import textwrap
from dataclasses import replace

import pytest
import torch

import gnnsys.trainers.forward.link as link_mod
import gnnsys.trainers.forward.node as node_mod
import gnnsys.trainers.forward.topdown as topdown_mod
from gnnsys import ConfigError, MiniBatch
from gnnsys.config import LINK_FORWARD_VARIANTS, NODE_FORWARD_VARIANTS, TrainConfig
from gnnsys.datasets import load_dataset
from gnnsys.datasets.splits import link_split
from gnnsys.errors import DataFormatError
from gnnsys.trainers.forward import ForwardTrainer
from gnnsys.trainers.forward.common import make_optimizer

KEYS = {"metric", "val", "test", "epochs", "seconds", "best_epoch", "history", "variant", "per_layer"}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny graphs: one intra-op thread is faster (and steadier on a busy machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def sbm():
    return load_dataset("synthetic-sbm", num_nodes=300, num_classes=3, num_features=16, homophily=0.8,
                        feature_signal=1.0, seed=1)


@pytest.fixture(scope="module")
def sbm_link(sbm):
    return link_split(sbm, val=0.1, test=0.1, seed=0)


def cfg(variant: str, **kw) -> TrainConfig:
    base = dict(trainer="forward", forward_variant=variant, layers=2, hidden=16, epochs=15, lr=0.01,
                weight_decay=5e-4, dropout=0.0, patience=10, quiet=True, forward_timesteps=3)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("variant", NODE_FORWARD_VARIANTS)
def test_node_variants_learn(sbm, variant):
    extra = dict(hidden=32, epochs=30) if variant.startswith("ff-") else {}  # goodness learns slower
    res = ForwardTrainer(cfg(variant, **{"epochs": 15, **extra})).run(sbm)
    assert KEYS <= set(res)
    assert res["metric"] == "acc" and res["variant"] == variant
    assert res["test"] > 0.6, res  # 3 classes: chance is ~0.33


@pytest.mark.parametrize("variant", LINK_FORWARD_VARIANTS)
def test_link_variants_learn(sbm_link, variant):
    res = ForwardTrainer(cfg(variant, epochs=12, batch_size=4096)).run(sbm_link)
    assert KEYS <= set(res)
    assert res["metric"] == "rocauc"
    assert res["test"] > 0.6, res


class _Recorder:
    """Wraps ``make_optimizer``: every optimizer step must see gradients on its own layer only."""

    def __init__(self) -> None:
        self.log: list[int] = []
        self.steps = 0
        self.owner: dict[int, int] = {}

    def __call__(self, module, s):
        idx = len(self.owner)
        self.owner[id(module)] = idx
        for p in module.parameters():
            p.register_hook(lambda g, idx=idx: self.log.append(idx) or g)
        opt = make_optimizer(module, s)
        rec = self
        zero, step = opt.zero_grad, opt.step

        def zero_grad(*a, **k):
            rec.log.clear()
            return zero(*a, **k)

        def checked_step(*a, **k):
            assert set(rec.log) == {idx}, f"layer {idx}'s step saw gradients of layers {sorted(set(rec.log))}"
            rec.steps += 1
            rec.log.clear()
            return step(*a, **k)

        opt.zero_grad, opt.step = zero_grad, checked_step
        return opt


@pytest.mark.parametrize("variant", NODE_FORWARD_VARIANTS + LINK_FORWARD_VARIANTS)
def test_no_gradient_crosses_a_layer(sbm, sbm_link, variant, monkeypatch):
    rec = _Recorder()
    for mod in (node_mod, topdown_mod, link_mod):
        monkeypatch.setattr(mod, "make_optimizer", rec)
    ds = sbm if variant in NODE_FORWARD_VARIANTS else sbm_link
    ForwardTrainer(cfg(variant, layers=3, epochs=3, patience=None, batch_size=4096)).run(ds)
    assert len(rec.owner) == 3 and rec.steps >= 9


def test_later_layer_loss_leaves_earlier_layers_untouched(sbm):
    """Train SF greedily; then run more training of the top layer only: lower layers' weights and
    grads stay exactly as they were."""
    impl = ForwardTrainer(cfg("sf", layers=2, epochs=3)).build(sbm)
    impl.fit(None)
    low = impl.layers[0]
    before = [p.detach().clone() for p in low.parameters()]
    for p in low.parameters():
        p.grad = None
    view = impl.train_views(impl.full)[0]
    top = impl.layers[1]
    top.train()
    out = top(impl.frozen_input(1, view), view.batch)
    impl.loss([out], [view], impl.full).backward()
    assert all(p.grad is None for p in low.parameters())
    assert all(p.grad is not None for p in top.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, low.parameters()))


@pytest.mark.parametrize("variant,shared", [("ff-vn", True), ("ff-la", False)])
def test_greedy_views_inputs_of_upper_layers(sbm, variant, shared, monkeypatch):
    """FF-VN (as in the paper's code) feeds every training view of layer 1 the positive view's
    layer-0 states: the views differ only in their virtual-node links. FF-LA's views each carry
    their own states (the appended label rides along through the frozen layers)."""
    import gnnsys.trainers.forward.common as common_mod

    seen: list[tuple[int, torch.Tensor]] = []
    forward = common_mod.ForwardLayer.forward

    def spy(self, x, batch):
        if self.training:
            seen.append((id(self), x.detach().clone()))
        return forward(self, x, batch)

    monkeypatch.setattr(common_mod.ForwardLayer, "forward", spy)
    impl = ForwardTrainer(cfg(variant, layers=2, epochs=2, patience=None)).build(sbm)
    impl.fit(None)
    top = id(impl.layers[1])
    inputs = [x for owner, x in seen if owner == top]
    k = sbm.num_classes  # one positive and k-1 negative views per step
    assert len(inputs) == 2 * k
    step = inputs[:k]
    same = all(torch.equal(step[0], x) for x in step[1:])
    assert same == shared


@pytest.mark.parametrize("layer", ["gcn", "sage", "gat", "gin"])
def test_every_registry_layer(sbm, layer):
    res = ForwardTrainer(cfg("sf", layer=layer, epochs=6)).run(sbm)
    assert res["test"] > 0.5, (layer, res)


def test_user_layer(sbm, tmp_path):
    f = tmp_path / "mine.py"
    f.write_text(textwrap.dedent("""
        import torch
        from torch import nn

        class PlainMean(nn.Module):
            def __init__(self, in_dim, out_dim):
                super().__init__()
                self.lin = nn.Linear(2 * in_dim, out_dim)

            def forward(self, x, edge_index, edge_weight=None):
                src, dst = edge_index
                w = torch.ones(src.numel()) if edge_weight is None else edge_weight
                agg = torch.zeros_like(x).index_add_(0, dst, x[src] * w[:, None])
                deg = torch.zeros(x.size(0)).index_add_(0, dst, w).clamp_min(1)[:, None]
                return self.lin(torch.cat([x, agg / deg], 1))
    """))
    for variant in ("ff-vn", "sf-top2input"):
        res = ForwardTrainer(cfg(variant, layer=f"{f}:PlainMean", epochs=6)).run(sbm)
        assert res["test"] > 0.5, (variant, res)


def _subgraph_batches(ds, parts: int = 3, seed: int = 0) -> list[MiniBatch]:
    """GraphSAINT-like batches: random node subsets, induced subgraphs, edge and loss weights."""
    g = torch.Generator().manual_seed(seed)
    train = set(ds.split["train"].tolist())
    batches = []
    for _ in range(parts):
        nodes = torch.randperm(ds.num_nodes, generator=g)[: ds.num_nodes // 2].sort().values
        sub, _ = ds.graph.subgraph(nodes)
        ei = sub.to_edge_index()
        tgt = torch.tensor([i for i, v in enumerate(nodes.tolist()) if v in train])
        batches.append(MiniBatch(node_ids=nodes, edge_index=ei, x=ds.features.gather(nodes),
                                 y=ds.labels[nodes], edge_weight=torch.full((ei.size(1),), 2.0),
                                 target=tgt, loss_weight=torch.full((tgt.numel(),), 1.0 / tgt.numel())))
    return batches


@pytest.mark.parametrize("variant", NODE_FORWARD_VARIANTS)
def test_node_variants_on_subgraph_batches(sbm, variant):
    impl = ForwardTrainer(cfg(variant, epochs=5)).build(sbm)
    hist = impl.fit(_subgraph_batches(sbm))
    assert hist.test_at_best > 0.5


# ------------------------------------------------------------------------------ bad input
def test_one_class_only(sbm):
    ds = replace(sbm, labels=torch.zeros_like(sbm.labels))
    with pytest.raises(DataFormatError, match="same label"):
        ForwardTrainer(cfg("sf")).run(ds)


def test_class_absent_from_training_split(sbm):
    train = sbm.split["train"]
    ds = replace(sbm, split={**sbm.split, "train": train[sbm.labels[train] != 2]})
    with pytest.raises(DataFormatError, match=r"classes \[2\] have no node in the training split"):
        ForwardTrainer(cfg("ff-vn")).run(ds)


@pytest.mark.parametrize("variant", ["ff-la", "sf", "sf-top2input"])
def test_node_variant_on_link_task(sbm_link, variant):
    with pytest.raises(ConfigError, match="does not fit a link task"):
        ForwardTrainer(cfg(variant)).run(sbm_link)


def test_link_variant_on_node_task(sbm):
    with pytest.raises(ConfigError, match="does not fit a node task"):
        ForwardTrainer(cfg("forward-ce")).run(sbm)


def test_unknown_variant_and_graph_task(sbm):
    with pytest.raises(ConfigError, match="choose one of"):
        ForwardTrainer(cfg("backprop-ish")).run(sbm)
    with pytest.raises(ConfigError, match="graph classification"):
        ForwardTrainer(cfg("sf")).run(replace(sbm, task="graph", graph_ptr=torch.tensor([0, sbm.num_nodes]),
                                               labels=torch.tensor([0]), split={}))


def test_bad_tau(sbm):
    with pytest.raises(ConfigError, match="tau"):
        ForwardTrainer(cfg("sf", forward_tau=0.0)).run(sbm)


def test_virtual_node_edge_direction(sbm):
    """``to-vn`` adds only member -> class-node edges (target = aggregating node), ``both`` the
    reverse too; a member's state is then independent of its class node's input."""
    from gnnsys.trainers.forward.common import with_virtual_nodes

    full = MiniBatch.full(sbm, torch.device("cpu"))
    n, k = sbm.num_nodes, sbm.num_classes
    members = torch.tensor([0, 5, 9])
    classes = torch.tensor([2, 0, 2])
    x = torch.randn(n, 4)
    both = with_virtual_nodes(full, x, members, classes, k)
    one = with_virtual_nodes(full, x, members, classes, k, direction="to-vn")
    e = full.edge_index.size(1)
    assert torch.equal(one.edge_index[:, e:], torch.stack([members, n + classes]))
    assert torch.equal(both.edge_index[:, e:], torch.stack([torch.cat([members, n + classes]),
                                                            torch.cat([n + classes, members])]))
    with pytest.raises(ConfigError, match="direction"):
        with_virtual_nodes(full, x, members, classes, k, direction="from-vn")
    with pytest.raises(ConfigError, match="vn-edges"):
        TrainConfig(trainer="forward", forward_vn_edges="sideways").validate()


@pytest.mark.parametrize("variant", ["sf", "sf-top2input", "sf-top2loss"])
def test_one_way_virtual_nodes_learn(sbm, variant):
    res = ForwardTrainer(cfg(variant, forward_vn_edges="to-vn")).run(sbm)
    assert res["test"] > 0.6, res


def test_virtual_node_links_default_per_variant(sbm, monkeypatch):
    """SF links members one way unless told otherwise; every other variant both ways."""
    from gnnsys.trainers.forward.common import ForwardSettings

    for variant in NODE_FORWARD_VARIANTS:
        want = "to-vn" if variant == "sf" else "both"
        assert ForwardSettings.from_config(cfg(variant), "node").vn_edges == want, variant
    assert ForwardSettings.from_config(cfg("sf", forward_vn_edges="both"), "node").vn_edges == "both"
    seen = []
    real = node_mod.with_virtual_nodes

    def spy(*a, **kw):
        seen.append(a[6] if len(a) > 6 else kw.get("direction", "both"))
        return real(*a, **kw)

    monkeypatch.setattr(node_mod, "with_virtual_nodes", spy)
    ForwardTrainer(cfg("sf", epochs=2)).run(sbm)
    assert seen and set(seen) == {"to-vn"}


@pytest.mark.parametrize("variant", ["sf", "ff-la", "ff-vn"])
def test_greedy_depth_prefix(sbm, variant):
    """A greedy depth-1 run is the first layer of a depth-3 run, bit for bit (with dropout):
    the experiment script reads shallow depths off deep runs on this basis."""
    from gnnsys.api import seed_everything

    kw = dict(seed=3, dropout=0.5, hidden=16, epochs=12, patience=4)
    seed_everything(3)
    one = ForwardTrainer(cfg(variant, layers=1, **kw)).run(sbm)
    seed_everything(3)
    three = ForwardTrainer(cfg(variant, layers=3, **kw)).run(sbm)
    assert len(three["per_layer"]) == 3
    assert one["per_layer"] == three["per_layer"][:1]
    assert (one["val"], one["test"]) == (three["per_layer"][0]["valid"], three["per_layer"][0]["test"])
    assert (three["val"], three["test"]) == (three["per_layer"][2]["valid"], three["per_layer"][2]["test"])


def test_prefix_records_read_shallow_depths_off_deep_runs():
    from gnnsys.experiments.forwardgnn import key_of, prefix_records

    per_layer = [{"layer": i, "best_epoch": 3, "valid": 0.5 + i / 10, "test": 0.4 + i / 10} for i in range(3)]
    deep = dict(part="node", dataset="cora", layer="gcn", depth=3, method="ff-la", protocol="random", seed=0,
                sampler="full", val=0.7, test=0.6, epochs=9, seconds=1.0, per_layer=per_layer)
    bp = {**deep, "method": "backprop"}
    measured_one = {**deep, "depth": 1, "test": 0.45, "per_layer": per_layer[:1]}
    new = prefix_records([deep, bp, measured_one], [1, 2, 3])
    assert [(r["method"], r["depth"]) for r in new] == [("ff-la", 2)]  # depth 1 measured; backprop never
    r = new[0]
    assert (r["val"], r["test"], r["derived_from_depth"], r["per_layer"]) == (0.6, 0.5, 3, per_layer[:2])
    assert prefix_records([deep, bp, measured_one, *new], [1, 2, 3]) == []
    saint = {**deep, "sampler": "saint-rw"}
    assert prefix_records([saint], [1, 2]) == []
    assert key_of(r)[3] == 2


def test_one_way_virtual_nodes_refused_for_ff_vn(sbm):
    with pytest.raises(ConfigError, match="does not fit ff-vn"):
        ForwardTrainer(cfg("ff-vn", forward_vn_edges="to-vn")).run(sbm)


def test_api_and_cli_wiring(tmp_path):
    """``gnnsys.api.train`` runs the forward trainer and returns the same summary as backprop."""
    from gnnsys.api import train

    out = tmp_path / "r.json"
    res = train(TrainConfig(dataset="synthetic-sbm", trainer="forward", forward_variant="sf", epochs=5, layers=2,
                            hidden=16, quiet=True, split="random", out=str(out)))
    assert res["trainer"] == "forward" and res["runs"][0]["variant"] == "sf" and out.exists()
    assert 0 <= res["test"] <= 1


@pytest.mark.parametrize("variant", ["sf", "sf-top2input"])
def test_node_variants_with_graphsaint(sbm, variant):
    """``config.sampler`` picks GraphSAINT subgraph batches (edge and loss normalization applied)."""
    res = ForwardTrainer(cfg(variant, epochs=4, sampler="saint-rw", saint_roots=60, saint_coverage=5)).run(sbm)
    assert res["test"] > 0.5, res


@pytest.mark.parametrize("variant", ["forward-ce", "top-down"])
def test_link_variants_with_graphsaint(sbm_link, variant):
    res = ForwardTrainer(cfg(variant, epochs=4, sampler="saint-rw", saint_roots=60, saint_coverage=5)).run(sbm_link)
    assert res["test"] > 0.55, res
