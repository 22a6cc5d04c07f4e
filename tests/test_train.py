"""Backprop training end to end on generated data, the Python API and the CLI."""

import json

import pytest
import torch

from gnnsys import Dataset, load_dataset
from gnnsys.api import train
from gnnsys.cli import main
from gnnsys.config import TrainConfig


def test_node_training_learns_planted_classes():
    res = train(dataset="synthetic-sbm", epochs=60, quiet=True)
    assert res["task"] == "node" and res["metric"] == "acc"
    # chance is 0.2 (5 classes); an MLP on the weak features reaches ~0.5
    assert res["test"] > 0.85


def test_random_split_changes_with_seed():
    a = train(dataset="synthetic-sbm", epochs=5, split="random", seed=1, quiet=True)
    b = train(dataset="synthetic-sbm", epochs=5, split="random", seed=1, quiet=True)
    assert a["test"] == b["test"]  # same seed, same split and weights
    ds = load_dataset("synthetic-sbm")
    from gnnsys.api import node_split

    s1 = node_split(ds, TrainConfig(split="random", seed=1))
    s2 = node_split(ds, TrainConfig(split="random", seed=2))
    n = ds.num_nodes
    assert s1["train"].numel() == int(0.64 * n) and s1["valid"].numel() == int(0.8 * n) - int(0.64 * n)
    assert not torch.equal(s1["train"], s2["train"])


def test_graph_training_separates_dense_from_sparse():
    res = train(dataset="synthetic-graphs", epochs=30, quiet=True, layers=3, hidden=32)
    assert res["task"] == "graph"
    assert res["test"] >= 0.85


def test_link_training_beats_chance(sbm_link_dataset):
    ds = sbm_link_dataset
    res = train(TrainConfig(dataset="sbm-link", epochs=30, quiet=True, hidden=64, lr=0.01, batch_size=4096,
                            link_head="dot"), ds)
    assert res["task"] == "link"
    # Random SBM edges carry only class information: a pair is in-class with probability ~0.68
    # for edges and 0.2 for random pairs, which caps ROC-AUC near 0.75; chance is 0.5.
    assert res["test"] > 0.65


def test_cli_train_writes_json(tmp_path, capsys):
    out = tmp_path / "r.json"
    code = main(["train", "--epochs", "3", "--quiet", "--out", str(out), "--hidden", "8"])
    assert code == 0
    data = json.loads(out.read_text())
    for key in ("dataset", "task", "metric", "val", "test", "epochs", "seconds"):
        assert key in data
    assert data["dataset"] == "synthetic-sbm" and data["epochs"] == 3
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "synthetic-sbm" in last and "val" in last and "test" in last and "acc" in last


def test_cli_config_file(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"epochs": 2, "hidden": 4, "quiet": True}))
    out = tmp_path / "r.json"
    assert main(["train", "--config", str(cfg), "--out", str(out), "--epochs", "3"]) == 0
    assert json.loads(out.read_text())["epochs"] == 3
    cfg.write_text(json.dumps({"epochz": 2}))
    assert main(["train", "--config", str(cfg)]) == 2


@pytest.mark.parametrize(
    "argv, msg",
    [
        (["train", "--dataset", "nosuchset"], "unknown dataset 'nosuchset'. Known datasets: "),
        (["train", "--layer", "nosuchconv", "--epochs", "1"], "unknown layer 'nosuchconv'"),
        (["train", "--layers", "0"], "--layers must be >= 1"),
        (["train", "--grad-clip", "-1"], "--grad-clip must be > 0"),
        (["train", "--trainer", "pipe", "--stages", "4", "--layers", "2", "--epochs", "1"], "--stages 4 > --layers 2"),
        (["train", "--dataset", "cora", "--data-root", "/nonexistent/data"], "GNNSYS_DATA"),
    ],
)
def test_cli_bad_input_exits_nonzero_with_message(argv, msg, capsys):
    assert main(argv + ["--quiet"]) == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err


def test_cli_lists_datasets(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "synthetic-sbm" in out and "powerlaw" in out


def test_readme_user_layer_example_runs_from_cli(tmp_path):
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "my_layer.py"
    out = tmp_path / "r.json"
    assert main(["train", "--layer", f"{example}:MeanMaxConv", "--epochs", "20", "--quiet", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["test"] > 0.5


def test_forward_variant_needs_forward_trainer(capsys):
    assert main(["train", "--forward-variant", "sf", "--quiet"]) == 2
    assert "--trainer forward" in capsys.readouterr().err
    assert main(["train", "--trainer", "forward", "--forward-variant", "nope", "--quiet"]) == 2
    assert "unknown forward variant" in capsys.readouterr().err


def test_forward_trainer_takes_the_paper_defaults():
    cfg = TrainConfig(trainer="forward", forward_variant="sf").resolved("cora", "node")
    assert (cfg.hidden, cfg.lr, cfg.weight_decay) == (128, 1e-3, 5e-4)
    assert TrainConfig(trainer="forward", lr=0.01).resolved("cora", "node").lr == 0.01


def _small_link_dataset(n=60, p=0.3, seed=0):
    from gnnsys import Graph

    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(n, n, generator=g) < p
    und = mask.triu(1).nonzero().t()
    graph = Graph.from_edge_index(und, n, make_undirected=True)
    return Dataset(name="dense-link", task="link", graph=graph, features=None, labels=None,
                   split={"train": und}, num_classes=1, metric="rocauc")


def test_link_negatives_are_never_edges_or_self_loops():
    from gnnsys.samplers.full import LinkBatchLoader

    ds = _small_link_dataset()
    edges = {tuple(e) for e in ds.graph.to_edge_index().t().tolist()}
    loader = LinkBatchLoader(ds, batch_size=64, num_neg=3, seed=1)
    negs = torch.cat([b.neg_edges for b in loader], 1)
    assert negs.size(1) == 3 * ds.split["train"].size(1)
    assert not any(tuple(e) in edges for e in negs.t().tolist())
    assert bool((negs[0] != negs[1]).all())
    # a loader with the same seed draws the same negatives; uniform draws do hit edges
    again = torch.cat([b.neg_edges for b in LinkBatchLoader(ds, batch_size=64, num_neg=3, seed=1)], 1)
    assert torch.equal(negs, again)
    plain = torch.cat([b.neg_edges for b in LinkBatchLoader(ds, 64, 3, 1, exclude_edges=False)], 1)
    assert any(tuple(e) in edges for e in plain.t().tolist())


def test_grad_clip_bounds_each_part():
    from gnnsys.models import build_model

    from gnnsys.trainers.backprop import clip_parts

    ds = _small_link_dataset()
    model = build_model("sage", 8, 16, 1, 2, task="link", encoder="embedding", num_nodes=ds.num_nodes)
    for p in model.parameters():
        p.grad = torch.full_like(p, 10.0)
    clip_parts(model, 1.0)
    for part in (model.encoder, model.layers, model.head):
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in part.parameters()]))
        assert float(norm) == pytest.approx(1.0, rel=1e-5)


def test_learned_embeddings_are_not_dropped_out():
    from gnnsys.models import build_model

    emb = build_model("sage", 8, 16, 1, 2, dropout=0.5, task="link", encoder="embedding", num_nodes=10)
    feat = build_model("sage", 8, 16, 1, 2, dropout=0.5, task="link")
    assert emb.input_dropout == 0.0 and emb.dropout == 0.5
    assert feat.input_dropout == 0.5
    assert emb.head.mlp[2].p == 0.5  # the pair MLP drops out between its layers


def test_link_negatives_on_a_complete_graph_fail_clearly():
    from gnnsys.samplers.full import LinkBatchLoader

    from gnnsys.errors import ConfigError

    ds = _small_link_dataset(n=6, p=1.1)  # every pair is an edge
    with pytest.raises(ConfigError, match="no negative pairs"):
        next(iter(LinkBatchLoader(ds, batch_size=4)))


def test_pair_bce_matches_mean_bce_and_survives_empty_sets():
    import torch.nn.functional as F

    from gnnsys.trainers.base import pair_bce

    pos = torch.randn(7, requires_grad=True)
    neg = torch.randn(5)
    ref = F.binary_cross_entropy_with_logits(pos, torch.ones(7)) + F.binary_cross_entropy_with_logits(
        neg, torch.zeros(5))
    assert torch.allclose(pair_bce(pos, neg), ref)
    # a subgraph whose pairs are all edges has no negatives: no NaN, gradients still flow
    loss = pair_bce(pos, neg[:0])
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(pos.grad).all() and pos.grad.abs().sum() > 0
    assert pair_bce(pos[:0], neg[:0]) == 0
