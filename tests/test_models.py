"""Layers against PyG/DGL references, the registry, user layers and GNNStack."""

import textwrap

import pytest
import torch
from gnnsys.models import build_model, get_layer, register_layer
from gnnsys.models.layers import GATLayer, GCNLayer, GINLayer, SAGELayer
from torch_geometric.nn import GATConv, GCNConv, GINConv, SAGEConv

from gnnsys import ConfigError, Graph, MiniBatch


@pytest.fixture
def small_graph():
    g = torch.Generator().manual_seed(0)
    ei = torch.randint(0, 40, (2, 160), generator=g)
    graph = Graph.from_edge_index(ei, 40, make_undirected=True, remove_self_loops=True, dedupe=True)
    x = torch.randn(40, 8, generator=g)
    w = torch.rand(graph.num_edges, generator=g) + 0.1
    return graph.to_edge_index(), x, w


def test_gcn_matches_pyg(small_graph):
    ei, x, w = small_graph
    ours = GCNLayer(8, 5)
    ref = GCNConv(8, 5)
    ref.lin.weight.data.copy_(ours.conv.lin.weight)
    ref.bias.data.copy_(ours.conv.bias)
    assert torch.allclose(ours(x, ei), ref(x, ei), atol=1e-5)
    assert torch.allclose(ours(x, ei, w), ref(x, ei, w), atol=1e-5)


@pytest.mark.parametrize("out_dim", [5, 12])  # narrowing (weight before the mean) and widening
def test_sage_matches_pyg_mean(small_graph, out_dim):
    ei, x, _ = small_graph
    ei = ei[:, (ei < 38).all(0)]  # nodes 38, 39 isolated: their mean term is the bias alone
    ours = SAGELayer(8, out_dim)
    assert ours.transform_first == (out_dim < 8)
    ref = SAGEConv(8, out_dim, aggr="mean")
    ref.load_state_dict(ours.conv.state_dict())
    assert torch.allclose(ours(x, ei), ref(x, ei), atol=1e-5)
    # gradients of the weights and of a hidden input (the narrowing layer's one fused product)
    xg = x.clone().requires_grad_()
    xr = x.clone().requires_grad_()
    g = torch.randn(40, out_dim)
    (ours(xg, ei) * g).sum().backward()
    (ref(xr, ei) * g).sum().backward()
    assert torch.allclose(xg.grad, xr.grad, atol=1e-5)
    for (name, a), b in zip(ours.conv.named_parameters(), ref.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5), name


def test_sage_edge_weight_is_weighted_mean(small_graph):
    ei, x, w = small_graph
    layer = SAGELayer(8, 5)
    num = torch.zeros(40, 8).index_add_(0, ei[1], w[:, None] * x[ei[0]])
    den = torch.zeros(40).index_add_(0, ei[1], w).clamp_min(1e-12)
    expected = layer.conv.lin_l(num / den[:, None]) + layer.conv.lin_r(x)
    assert torch.allclose(layer(x, ei, w), expected, atol=1e-5)


def test_gin_matches_pyg(small_graph):
    ei, x, _ = small_graph
    ours = GINLayer(8, 5, batch_norm=False)
    ref = GINConv(ours.conv.nn, train_eps=True)
    ref.eps.data.fill_(0.3)
    ours.conv.eps.data.fill_(0.3)
    assert torch.allclose(ours(x, ei), ref(x, ei), atol=1e-5)


def test_gine_matches_pyg_with_bond_encoder(small_graph):
    from gnnsys.models.layers import GINELayer
    from torch_geometric.nn import GINEConv

    ei, x, w = small_graph
    g = torch.Generator().manual_seed(1)
    bonds = torch.stack([torch.randint(0, k, (ei.size(1),), generator=g) for k in (4, 5, 2)], 1)
    ours = GINELayer(8, 5, batch_norm=False)
    ours.conv.eps.data.fill_(0.2)
    ref = GINEConv(ours.conv.nn, train_eps=True)
    ref.eps.data.fill_(0.2)
    e = ours.edge_encoder(bonds)
    assert torch.allclose(ours(x, ei, edge_attr=bonds), ref(x, ei, e), atol=1e-5)
    # edge weights scale each message
    expected = ours.conv.nn(1.2 * x + torch.zeros_like(x).index_add_(0, ei[1], w[:, None] * torch.relu(x[ei[0]] + e)))
    assert torch.allclose(ours(x, ei, w, edge_attr=bonds), expected, atol=1e-5)
    with pytest.raises(ConfigError, match="needs edge features"):
        ours(x, ei)
    dense = GINELayer(8, 5, edge_dim=3)
    assert dense(x, ei, edge_attr=torch.randn(ei.size(1), 3)).shape == (40, 5)


def test_gat_matches_pyg(small_graph):
    ei, x, w = small_graph
    ours = GATLayer(8, 6, heads=2)
    ref = GATConv(8, 3, heads=2)
    ref.lin.weight.data.copy_(ours.lin.weight)
    ref.att_src.data.copy_(ours.att_src)
    ref.att_dst.data.copy_(ours.att_dst)
    ref.bias.data.copy_(ours.bias)
    assert torch.allclose(ours(x, ei), ref(x, ei), atol=1e-5)
    # weights of 1 change nothing; other weights change the attention
    assert torch.allclose(ours(x, ei, torch.ones(ei.size(1))), ref(x, ei), atol=1e-5)
    assert not torch.allclose(ours(x, ei, w * 5), ref(x, ei), atol=1e-3)


def test_sparse_operator_and_edge_index_paths_agree(small_graph):
    ei, x, w = small_graph
    batch = MiniBatch(node_ids=torch.arange(40), edge_index=ei, x=x, edge_weight=w)
    for cls in (GCNLayer, SAGELayer, GINLayer):
        layer = cls(8, 4)
        layer.eval()
        assert torch.allclose(layer(x, ei, w), layer(x, batch.adj(cls.propagation)), atol=1e-5)


def test_dgl_adapter_matches_dgl_graphconv(small_graph):
    dgl = pytest.importorskip("dgl")
    ei, x, w = small_graph
    cls = get_layer("dgl-graphconv")
    layer = cls(8, 5)
    g = dgl.graph((ei[0], ei[1]), num_nodes=40)
    assert torch.allclose(layer(x, ei), layer.module(g, x), atol=1e-6)
    # DGL's symmetric GraphConv without self loops vs ours: same math when loops are added on both
    gl = dgl.add_self_loop(g)
    ours = GCNLayer(8, 5)
    layer.module.weight.data.copy_(ours.conv.lin.weight.t())
    layer.module.bias.data.copy_(ours.conv.bias)
    src, dst = gl.edges()
    assert torch.allclose(layer.module(gl, x), ours(x, ei), atol=1e-5)
    assert src.numel() == ei.size(1) + 40


def test_unknown_layer_lists_known_names():
    with pytest.raises(ConfigError, match="gcn.*sage|known layers"):
        get_layer("nosuchconv")


def test_user_layer_from_file(tmp_path, small_graph):
    f = tmp_path / "mylayer.py"
    f.write_text(textwrap.dedent('''
        import torch
        from torch import nn

        class MyConv(nn.Module):
            def __init__(self, in_dim, out_dim):
                super().__init__()
                self.lin = nn.Linear(in_dim, out_dim)

            def forward(self, x, edge_index, edge_weight=None):
                agg = torch.zeros_like(x).index_add_(0, edge_index[1], x[edge_index[0]])
                return self.lin(x + agg)
    '''))
    ei, x, _ = small_graph
    model = build_model(f"{f}:MyConv", 8, 16, 3, 2)
    out = model(MiniBatch(node_ids=torch.arange(40), edge_index=ei, x=x))
    assert out.shape == (40, 3)
    with pytest.raises(ConfigError, match="no attribute"):
        get_layer(f"{f}:Missing")
    with pytest.raises(ConfigError, match="does not exist"):
        get_layer(f"{tmp_path}/nofile.py:MyConv")


def test_register_layer_decorator(small_graph):
    @register_layer("test-double-gcn")
    class Double(GCNLayer):
        def forward(self, x, edge_index, edge_weight=None):
            return 2 * super().forward(x, edge_index, edge_weight)

    assert get_layer("test-double-gcn") is Double
    ei, x, _ = small_graph
    m = build_model("test-double-gcn", 8, 4, 3, 2, dropout=0.0)
    assert m(MiniBatch(node_ids=torch.arange(40), edge_index=ei, x=x)).shape == (40, 3)


@pytest.mark.parametrize("task", ["node", "link", "graph"])
@pytest.mark.parametrize("layer", ["gcn", "sage", "gin", "gat"])
def test_forward_equals_composed_forward_layer(layer, task, small_graph):
    ei, x, _ = small_graph
    gi = torch.arange(40) // 10
    batch = MiniBatch(node_ids=torch.arange(40), edge_index=ei, x=x, graph_index=gi, num_graphs=4)
    model = build_model(layer, 8, 16, 3, 3, dropout=0.5, task=task)
    model.eval()
    hs = [model.encode(batch)]
    for i in range(model.num_layers):
        hs.append(model.forward_layer(i, hs[-1], batch))
    head_in = hs if task == "graph" else hs[-1]
    assert torch.allclose(model(batch), model.head(head_in, batch), atol=1e-6)
    expected = {"node": (40, 3), "link": (40, 16), "graph": (4, 3)}[task]
    assert model(batch).shape == expected


def test_build_model_rejects_bad_sizes():
    with pytest.raises(ConfigError):
        build_model("gcn", 8, 16, 3, 0)
    with pytest.raises(ConfigError):
        build_model("gcn", 8, 16, 3, 2, task="edge")


def test_dense_and_csr_operators_agree():
    from gnnsys.sparse import propagation_matrix

    g = torch.Generator().manual_seed(0)
    ei = torch.randint(0, 50, (2, 800), generator=g)
    x, w = torch.randn(50, 8, generator=g), torch.rand(800, generator=g)
    for cls in (GCNLayer, SAGELayer, GINLayer):
        layer = cls(8, 4)
        layer.eval()
        dense = propagation_matrix(ei, 50, w, cls.propagation, allow_dense=True)
        csr = propagation_matrix(ei, 50, w, cls.propagation)
        assert dense.layout == torch.strided and csr.is_sparse_csr
        assert torch.allclose(layer(x, dense), layer(x, csr), atol=1e-5)
        assert torch.allclose(csr.to_dense(), dense, atol=1e-6)


def test_input_dropout_matches_dropout_in_distribution():
    from gnnsys.models.stack import input_dropout

    g = torch.Generator().manual_seed(0)
    x = (torch.rand(200, 300, generator=g) < 0.02).float() * torch.rand(200, 300, generator=g)
    torch.manual_seed(0)
    outs = torch.stack([input_dropout(x, 0.5, True) for _ in range(400)])
    assert bool((outs[:, x == 0] == 0).all())  # a zero stays zero
    nz = x != 0
    kept = (outs[:, nz] != 0).float().mean()
    assert abs(float(kept) - 0.5) < 0.01  # 400 draws of ~1200 nonzeros: std ~0.0007
    vals, ref = outs[:, nz], x[nz].expand(400, -1)
    assert torch.allclose(vals[vals != 0], 2 * ref[vals != 0])  # kept entries scaled by 1/(1-p)
    # unbiased: E[out] = x; each mean of 400 draws has std 0.05 x (x <= 1), 5 std at most
    assert torch.allclose(outs.mean(0), x, atol=0.25)
    assert torch.equal(input_dropout(x, 0.5, False), x) and torch.equal(input_dropout(x, 0.0, True), x)
    assert torch.equal(input_dropout(x, 1.0, True), torch.zeros_like(x))
    dense = torch.rand(50, 40, generator=g) + 0.1  # not mostly zeros: plain F.dropout
    assert ((input_dropout(dense, 0.5, True) == 0).float().mean() - 0.5).abs() < 0.05


@pytest.mark.parametrize("name", ["gcn", "sage", "gat"])
def test_sparse_input_linear_matches_dense(name):
    """A mostly-zero input goes through a CSR matmul: same output and weight gradients as dense."""
    from gnnsys.models.registry import get_layer
    from gnnsys.models.stack import input_dropout

    from gnnsys.sparse import propagation_matrix, sparse_input

    g = torch.Generator().manual_seed(1)
    x = (torch.rand(60, 300, generator=g) < 0.03).float() * torch.rand(60, 300, generator=g)
    ei = torch.randint(0, 60, (2, 240), generator=g)
    layer = get_layer(name)(300, 16)
    prop = getattr(layer, "propagation", None)
    op = ei if prop is None else propagation_matrix(ei, 60, None, prop)
    assert sparse_input(x) is not None and sparse_input(x.clone().requires_grad_()) is None
    assert sparse_input(torch.rand(60, 300) + 0.1) is None  # dense input: dense matmul
    outs, grads = [], []
    for inp in (x, x.clone().requires_grad_()):  # CSR path, then dense (an input that needs grad)
        layer.zero_grad()
        out = layer(inp, op)
        out.pow(2).sum().backward()
        outs.append(out.detach())
        grads.append([p.grad.clone() for p in layer.parameters() if p.grad is not None])
    assert torch.allclose(outs[0], outs[1], atol=1e-5)
    assert len(grads[0]) == len(grads[1]) and all(torch.allclose(a, b, atol=1e-4) for a, b in zip(*grads))
    torch.manual_seed(0)
    d = input_dropout(x, 0.5, True)
    assert torch.equal(sparse_input(d).to_dense(), d)  # the CSR copy dropout attaches is its output
    torch.manual_seed(0)
    c = input_dropout(x, 0.5, True, sparse_ok=True)  # a layer that takes CSR gets the CSR alone
    assert c.is_sparse_csr and torch.equal(c.to_dense(), d)  # the same draw as the dense result
    if getattr(layer, "accepts_sparse_input", False):
        assert torch.allclose(layer(c, op), layer(d, op), atol=1e-5)
    layer.eval()
    expected = layer(x, op).detach()
    with torch.inference_mode():  # inference tensors keep no version counter: nothing is cached on them
        xi = x.clone()
        assert torch.allclose(layer(xi, op), expected, atol=1e-5)
        assert torch.allclose(layer(xi, op), expected, atol=1e-5)
        layer.train()
        assert input_dropout(xi, 0.5, True).shape == x.shape


def test_multi_head_gat_stack_has_a_single_head_classifier():
    """``layer_kwargs={"heads": 4}``: hidden GAT layers get 4 heads, the class-score layer one
    (7 classes are not divisible by 4), and the stack runs."""
    model = build_model("gat", 10, 16, 7, 3, layer_kwargs={"heads": 4})
    assert [conv.heads for conv in model.layers] == [4, 4, 1]
    ei = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
    out = model(MiniBatch(node_ids=torch.arange(4), edge_index=ei, x=torch.randn(4, 10)))
    assert out.shape == (4, 7)
