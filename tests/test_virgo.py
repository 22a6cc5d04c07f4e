"""Virgo initialization: variances against an independent dense computation, the drawn
weights, and bad inputs."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from gnnsys.models import build_model, init_model_, register_layer, virgo_variances
from gnnsys.models.init import SCHEMES, dense_variance
from torch import nn

from gnnsys.errors import ConfigError
from gnnsys.graph import Graph

LAYERS = ("gcn", "sage", "gin", "gat")


def small_graph(directed: bool = False) -> tuple[Graph, np.ndarray]:
    """12 nodes: a few triangles and a path, one isolated node (11); ``A[v, u] = 1`` for u -> v."""
    und = [(0, 1), (1, 2), (2, 0), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7), (7, 8), (8, 3), (9, 10), (1, 9)]
    edges = list(und) if directed else und + [(v, u) for u, v in und]
    if directed:
        edges += [(4, 0), (10, 2)]
    ei = torch.tensor(edges, dtype=torch.long).t()
    n = 12
    a = np.zeros((n, n))
    for u, v in edges:
        a[v, u] += 1.0
    return Graph.from_edge_index(ei, num_nodes=n), a


def dense_operator(a: np.ndarray, layer: str, eps: float = 0.0) -> np.ndarray:
    n = a.shape[0]
    eye = np.eye(n)
    if layer == "gcn":
        at = a + eye
        d = at.sum(1)
        return at / np.sqrt(d)[:, None] / np.sqrt(d)[None, :]
    if layer == "sage":
        deg = a.sum(1)
        return np.divide(a, deg[:, None], out=np.zeros_like(a), where=deg[:, None] > 0)
    if layer == "gin":
        return a + (1 + eps) * eye
    if layer == "gat":
        at = a * (1 - eye) + eye
        return at / at.sum(1)[:, None]
    raise AssertionError(layer)


def dense_virgo(a: np.ndarray, x: np.ndarray, layer: str, c: int, d: int, num_layers: int, mode: str,
                last: str = "classifier", eps: float = 0.0) -> list[float]:
    """REFERENCE.md's formulas with dense matrix powers (backward on Pᵀ)."""
    p = dense_operator(a, layer, eps)
    n, d_in = x.shape
    xbar, ones = x.mean(1), np.ones(n)

    def s(v: np.ndarray, k: int, t: bool = False) -> float:
        m = np.linalg.matrix_power(p.T if t else p, k)
        return float(np.sum((m @ v) ** 2))

    out = []
    for lidx in range(1, num_layers + 1):
        sf = 2 / d_in if lidx == 1 else 2 / d * s(xbar, lidx - 1) / s(xbar, lidx)
        if lidx == num_layers:
            sb = (n / ((c - 1) * s(ones, 1, True)) if last == "classifier"
                  else 2 / d * s(ones, 0, True) / s(ones, 1, True))
        else:
            k = num_layers - lidx
            sb = 2 / d * s(ones, k, True) / s(ones, k + 1, True)
        v = {"forward": sf, "backward": sb, "virgo": 2 / (1 / sf + 1 / sb)}[mode]
        out.append(v / (2 if layer == "sage" else 1))
    return out


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("directed", [False, True])
def test_variances_match_dense_reference(layer: str, directed: bool) -> None:
    graph, a = small_graph(directed)
    x = np.random.default_rng(0).random((12, 5))
    for mode in ("virgo", "forward", "backward"):
        for last in ("classifier", "hidden"):
            got = virgo_variances(graph, torch.tensor(x), 4, 8, 5, layer=layer, mode=mode, last=last)
            want = dense_virgo(a, x, layer, 4, 8, 5, mode, last)
            np.testing.assert_allclose(got, want, rtol=1e-6)


def test_gin_reads_eps_from_the_layer() -> None:
    graph, a = small_graph()
    x = np.random.default_rng(1).random((12, 3))
    model = build_model("gin", 3, 8, 4, 4, dropout=0.0)
    for i, lay in enumerate(model.layers):
        with torch.no_grad():
            lay.conv.eps.fill_(0.1 * (i + 1))
    got = virgo_variances(graph, torch.tensor(x), 4, 8, 4, layers=list(model.layers))
    for i in range(4):  # layer i's ratio uses its own eps
        want = dense_virgo(a, x, "gin", 4, 8, 4, "virgo", eps=0.1 * (i + 1))[i]
        assert got[i] == pytest.approx(want, rel=1e-6)


def random_graph(n: int = 400, m: int = 2000, seed: int = 0) -> Graph:
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, m), generator=g)
    return Graph.from_edge_index(ei, num_nodes=n, make_undirected=True, remove_self_loops=True, dedupe=True)


@pytest.mark.parametrize("layer", LAYERS)
def test_drawn_weights_have_the_virgo_variance(layer: str) -> None:
    graph = random_graph()
    x = torch.rand(graph.num_nodes, 300)
    model = build_model(layer, 300, 256, 7, 3, dropout=0.0)
    init_model_(model, "virgo", graph=graph, features=x, num_classes=7, seed=3)
    want = virgo_variances(graph, x, 7, 256, 3, layers=list(model.layers))
    for lay, var in zip(model.layers, want):
        lins = [m for m in lay.modules() if hasattr(m, "weight") and getattr(m.weight, "dim", lambda: 0)() == 2]
        assert lins
        for j, m in enumerate(lins):
            w = m.weight.detach()
            target = var if (layer != "gin" or j == 0) else dense_variance("virgo", w.size(1), w.size(0))
            if w.numel() >= 2000:
                assert w.var(unbiased=False).item() == pytest.approx(target, rel=0.10)
            assert w.abs().max().item() <= math.sqrt(3 * target) + 1e-7
        for name, p in lay.named_parameters():
            if name.endswith("bias") and "BatchNorm" not in name:
                assert torch.all(p == 0), name


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_is_finite_and_seeded(scheme: str) -> None:
    graph = random_graph(200, 600)
    x = torch.rand(200, 16)
    a = init_model_(build_model("sage", 16, 32, 3, 3), scheme, graph=graph, features=x, num_classes=3, seed=5)
    b = init_model_(build_model("sage", 16, 32, 3, 3), scheme, graph=graph, features=x, num_classes=3, seed=5)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.isfinite(p).all(), n
        assert torch.equal(p, q), n
    if scheme in ("xavier", "kaiming", "kaiming_fan_out"):
        w = a.layers[1].conv.lin_l.weight
        want = dense_variance(scheme, 32, 32)
        assert w.abs().max().item() <= math.sqrt(3 * want) + 1e-7


def _all_finite(model: nn.Module) -> bool:
    return all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("layer", LAYERS)
def test_isolated_nodes_give_finite_weights(layer: str) -> None:
    empty = Graph.from_edge_index(torch.empty(2, 0, dtype=torch.long), num_nodes=30)
    x = torch.rand(30, 6)
    vs = virgo_variances(empty, x, 3, 16, 4, layer=layer)
    assert all(math.isfinite(v) and v > 0 for v in vs)
    model = init_model_(build_model(layer, 6, 16, 3, 4), "virgo", graph=empty, features=x, num_classes=3)
    assert _all_finite(model)


def test_zero_feature_mean_falls_back_to_ones() -> None:
    graph = random_graph(100, 300)
    half = torch.randn(100, 4)
    x = torch.cat([half, -half], 1)  # every node's mean is exactly 0
    with pytest.warns(UserWarning, match="feature mean is zero"):
        vs = virgo_variances(graph, x, 3, 16, 3)
    assert vs == pytest.approx(virgo_variances(graph, None, 3, 16, 3, in_dim=8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = init_model_(build_model("gcn", 8, 16, 3, 3), "virgo", graph=graph, features=x, num_classes=3)
    assert _all_finite(model)


def test_fewer_than_two_classes_is_a_clear_error() -> None:
    graph = random_graph(50, 100)
    x = torch.rand(50, 4)
    with pytest.raises(ConfigError, match="num_classes >= 2"):
        virgo_variances(graph, x, 1, 16, 2)
    with pytest.raises(ConfigError, match="num_classes >= 2"):
        init_model_(build_model("gcn", 4, 16, 1, 2), "virgo", graph=graph, features=x, num_classes=1)
    # a head follows the stack (link/graph tasks): the class count does not enter
    assert all(v > 0 for v in virgo_variances(graph, x, 1, 16, 2, last="hidden"))


@register_layer("test-virgo-opaque")
class OpaqueConv(nn.Module):
    """A user layer that declares no propagation operator."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.lin = nn.Linear(in_dim, out_dim)

    def forward(self, x, edge_index, edge_weight=None):  # noqa: ANN001
        return self.lin(x)


def test_unknown_operator_is_a_clear_error_or_documented_fallback() -> None:
    graph, _ = small_graph()
    x = torch.rand(12, 4)
    model = build_model("test-virgo-opaque", 4, 8, 3, 2)
    with pytest.raises(ConfigError, match="OpaqueConv declares no propagation operator"):
        init_model_(model, "virgo", graph=graph, features=x, num_classes=3)
    with pytest.warns(UserWarning, match="using 'gcn'"):
        init_model_(model, "virgo", graph=graph, features=x, num_classes=3, fallback="gcn")
    assert _all_finite(model)
    ref = virgo_variances(graph, x, 3, 8, 2, layer="gcn")
    assert model.layers[0].lin.weight.var().item() < 3 * ref[0]
    init_model_(model, "kaiming", graph=graph)  # non-graph schemes need no operator
    OpaqueConv.propagation = "mean"
    try:
        init_model_(model, "virgo", graph=graph, features=x, num_classes=3)
    finally:
        del OpaqueConv.propagation


def test_unknown_scheme_and_missing_graph() -> None:
    model = build_model("gcn", 4, 8, 3, 2)
    with pytest.raises(ConfigError, match="unknown init scheme"):
        init_model_(model, "orthogonal")
    with pytest.raises(ConfigError, match="needs the graph"):
        init_model_(model, "virgo")


def test_graph_task_samples_graphs_and_embedding_encoders() -> None:
    from gnnsys.datasets import load_dataset

    ds = load_dataset("synthetic-graphs", num_graphs=40)
    model = build_model("gin", ds.num_features, 32, ds.num_classes, 3, task="graph", norm="batch")
    init_model_(model, "virgo", dataset=ds, seed=1)
    assert _all_finite(model)
    # link task with a learned embedding (x̄ = 1, d_in = embedding width)
    graph = random_graph(300, 1200)
    link = build_model("sage", 0, 32, 1, 2, task="link", encoder="embedding", num_nodes=300)
    emb = link.encoder.emb.weight.detach().clone()
    init_model_(link, "virgo", graph=graph, features=None, num_classes=1)
    assert _all_finite(link)
    assert torch.equal(emb, link.encoder.emb.weight)  # encoders keep their own init
    want = virgo_variances(graph, None, None, 32, 2, layer="sage", last="hidden")
    assert link.layers[0].conv.lin_l.weight.var().item() == pytest.approx(want[0], rel=0.25)


def test_virgo_experiment_merges_seed_chunks(tmp_path):
    """Per-seed result files pool into one table row; a repeated seed is refused."""
    import json

    from gnnsys.experiments.virgo import main, merge

    def chunk(seed, scores):
        runs = {i: {"runs": [{"seed": seed, "test": s, "val": s, "fold_tests": [s], "epochs": 1, "seconds": 1.0}]}
                for i, s in scores.items()}
        path = tmp_path / f"s{seed}.json"
        path.write_text(json.dumps({"ddi-sage": {"dataset": "ogbl-ddi", "overrides": {"epochs": 10},
                                                 "metric": "hits@20", "inits": runs}}))
        return str(path)

    a, b = chunk(0, {"virgo": 0.1, "kaiming": 0.3}), chunk(1, {"virgo": 0.3, "kaiming": 0.5})
    m = merge([a, b])["ddi-sage"]
    assert m["seeds"] == 2 and m["inits"]["virgo"]["scores"] == [0.1, 0.3]
    assert abs(m["inits"]["virgo"]["mean"] - 0.2) < 1e-12 and abs(m["inits"]["kaiming"]["std"] - 0.1) < 1e-12
    with pytest.raises(ValueError, match="repeats seeds"):
        merge([a, a])
    out = tmp_path / "merged.json"
    assert main(["--merge", a, b, "--out", str(out)]) == 0
    assert json.loads(out.read_text())["ddi-sage"]["inits"]["kaiming"]["mean"] == pytest.approx(0.4)
