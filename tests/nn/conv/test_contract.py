"""RGConv and MRConv keep MessagePassing's contract on every path: each aggregation and flow
PyG offers gives the same layer whether the graph comes as k-NN-ordered edges, shuffled edges,
a neighbour table or a sparse adjacency; explanation masks and hooks are honoured."""

import pytest
import torch
import torch_geometric
from torch_geometric.explain import Explainer, GNNExplainer
from torch_geometric.explain.algorithm.utils import clear_masks, set_masks

from pyg_fer.nn import MRConv, RGConv, dilated_knn, neighbours_to_edge_index
from pyg_fer.nn.conv._fused import can_fuse

AGGRS = ["sum", "mean", "max", "min"]
FLOWS = ["source_to_target", "target_to_source"]
CONVS = {
    "rg_scalar": lambda **kw: RGConv(8, 6, gate="scalar", **kw),
    "rg_channel": lambda **kw: RGConv(8, 6, gate="channel", **kw),
    "mr": lambda **kw: MRConv(8, 6, **kw),
}


def reference(conv, x, edge_index):
    """The layer computed edge by edge from its definition (Eq. 7-8 for RG-Conv)."""
    src_row, dst_row = (0, 1) if conv.flow == "source_to_target" else (1, 0)
    per_target = [[] for _ in range(x.size(0))]
    for edge in edge_index.t().tolist():
        j, i = edge[src_row], edge[dst_row]
        relation = x[j] - x[i]
        if isinstance(conv, RGConv):
            relation = torch.sigmoid(conv.gate_lin(relation)) * relation
        per_target[i].append(relation)
    reduce = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax, "min": torch.amin}
    aggr = torch.stack([
        reduce[conv.aggr](torch.stack(m), dim=0) if m else x.new_zeros(x.size(1))
        for m in per_target
    ])
    return conv.act(conv.norm(conv.update_lin(torch.cat([x, aggr], dim=-1))))


def graphs(num_graphs=3, nodes=10, k=3, dilation=2):
    x = torch.randn(num_graphs, nodes, 8)
    nbr = dilated_knn(x, k, dilation)  # [B, N, k] local ids
    flat = x.view(num_graphs * nodes, 8)
    return flat, nbr, neighbours_to_edge_index(nbr)


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize("aggr", AGGRS)
@pytest.mark.parametrize("name", list(CONVS))
def test_every_graph_form_is_the_same_layer(name, aggr, flow):
    torch.manual_seed(0)
    conv = CONVS[name](aggr=aggr, flow=flow).eval()
    x, nbr, edge_index = graphs()
    shuffled = edge_index[:, torch.randperm(edge_index.size(1))]
    flat_nbr = edge_index[0].view(-1, 3)  # [num_nodes, k] global ids
    expected = reference(conv, x, edge_index)
    outputs = {
        "knn-ordered edges": conv(x, edge_index),
        "shuffled edges": conv(x, shuffled),
        "[B, N, k] table": conv(x, neighbours=nbr),
        "[num_nodes, k] table": conv(x, neighbours=flat_nbr),
        "edges + table": conv(x, edge_index, neighbours=nbr),
        "int32 edges": conv(x, edge_index.int()),  # PyG's layers accept int32 indices
    }
    for form, out in outputs.items():
        assert torch.allclose(out, expected, atol=1e-5), form


@pytest.mark.parametrize("aggr", AGGRS)
@pytest.mark.parametrize("name", list(CONVS))
def test_fused_gradients_equal_propagate(name, aggr):
    torch.manual_seed(1)
    conv = CONVS[name](aggr=aggr).train()
    x, nbr, edge_index = graphs()
    assert can_fuse(conv)
    results = []
    for kwargs in ({"neighbours": nbr}, {"edge_index": edge_index[:, torch.randperm(90)]}):
        inp = x.clone().requires_grad_(True)
        out = conv(inp, **kwargs)
        grads = torch.autograd.grad(out.pow(3).sum(), [inp, *conv.parameters()])
        results.append((out, grads))
    (out_a, grads_a), (out_b, grads_b) = results
    assert torch.allclose(out_a, out_b, atol=1e-5)
    for a, b in zip(grads_a, grads_b, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", list(CONVS))
def test_zero_explain_mask_gives_the_no_edge_output(name):
    conv = CONVS[name]().eval()
    x, nbr, edge_index = graphs()
    no_edges = conv(x, torch.empty(2, 0, dtype=torch.long))
    set_masks(conv, torch.zeros(edge_index.size(1)), edge_index, apply_sigmoid=False)
    assert not can_fuse(conv)
    assert torch.allclose(conv(x, edge_index), no_edges, atol=1e-6)
    assert torch.allclose(conv(x, edge_index, neighbours=nbr), no_edges, atol=1e-6)
    assert torch.allclose(conv(x, neighbours=nbr), no_edges, atol=1e-6)
    clear_masks(conv)
    assert can_fuse(conv) and not torch.allclose(conv(x, neighbours=nbr), no_edges)


class _TwoLayerRG(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = RGConv(8, 16)
        self.conv2 = RGConv(16, 4)

    def forward(self, x, edge_index):
        return self.conv2(self.conv1(x, edge_index), edge_index)


def test_gnn_explainer_gets_a_signal_on_knn_graphs():
    torch.manual_seed(0)
    model = _TwoLayerRG().eval()
    x, _, edge_index = graphs(num_graphs=1, nodes=20, k=4, dilation=1)
    explainer = Explainer(
        model, algorithm=GNNExplainer(epochs=30), explanation_type="model",
        node_mask_type=None, edge_mask_type="object",
        model_config=dict(mode="multiclass_classification", task_level="node",
                          return_type="raw"),
    )
    explanation = explainer(x, edge_index, index=0)
    mask = explanation.edge_mask
    assert mask.shape == (edge_index.size(1),)
    # Only edges within two hops of node 0 can matter; the mask must single them out.
    one_hop = edge_index[1] == 0
    assert mask[one_hop].min() > 0 and float(mask.std()) > 0
    assert mask[one_hop].mean() > mask[edge_index[1] != 0].mean()


@pytest.mark.parametrize("name", list(CONVS))
def test_message_hooks_see_every_edge(name):
    conv = CONVS[name]().eval()
    x, nbr, edge_index = graphs()
    seen = []
    handle = conv.register_message_forward_hook(lambda m, inputs, out: seen.append(out.size(0)))
    assert not can_fuse(conv)
    conv(x, neighbours=nbr)
    assert seen == [edge_index.size(1)]
    handle.remove()
    assert can_fuse(conv)


def test_multi_aggregation_widens_the_update():
    conv = RGConv(8, 6, aggr=["sum", "max"]).eval()
    assert conv.update_lin.in_features == 8 + 16
    x, nbr, edge_index = graphs()
    out = conv(x, neighbours=nbr)
    assert out.shape == (30, 6)
    assert torch.allclose(out, conv(x, edge_index[:, torch.randperm(90)]), atol=1e-5)
    assert MRConv(8, 6, aggr=["mean", "max", "min"]).update_lin.in_features == 8 + 24


@pytest.mark.parametrize("cls", [RGConv, MRConv])
def test_decomposed_layers_is_refused_clearly(cls):
    with pytest.raises(ValueError, match=f"{cls.__name__} does not support decomposed_layers=2"):
        cls(8, 8, decomposed_layers=2)
    conv = cls(8, 8)
    with pytest.raises(ValueError, match="decomposed_layers=4"):
        conv.decomposed_layers = 4
    assert conv.decomposed_layers == 1


def test_refused_options_and_bad_tables():
    with pytest.raises(ValueError, match="needs an aggregation"):
        RGConv(8, 8, aggr=None)
    with pytest.raises(ValueError, match="node_dim"):
        MRConv(8, 8, node_dim=1)
    conv = RGConv(8, 8)
    x = torch.randn(30, 8)
    with pytest.raises(ValueError, match="edge_index, neighbours or both"):
        conv(x)
    with pytest.raises(ValueError, match=r"\(4, 10, 3\).*4 graphs of 10 nodes.*30"):
        conv(x, neighbours=torch.zeros(4, 10, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(29, 3\) list 29 targets"):
        conv(x, neighbours=torch.zeros(29, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer ids"):
        conv(x, neighbours=torch.zeros(30, 3))


def test_debug_mode_checks_the_table_against_edge_index():
    conv = MRConv(8, 8)
    x, nbr, edge_index = graphs()
    adj_t = torch.sparse_coo_tensor(edge_index.flip(0), torch.ones(90), (30, 30)).coalesce()
    other = edge_index.clone()
    other[0, 0] = (other[0, 0] + 1) % 10  # one edge moved to another source
    with torch_geometric.debug():
        # the same edges in any order, or as a sparse adj_t, are the table's graph
        for same in (edge_index, edge_index[:, torch.randperm(90)], adj_t):
            assert torch.equal(conv(x, same, neighbours=nbr), conv(x, neighbours=nbr))
        with pytest.raises(ValueError, match="is not the graph of neighbours"):
            conv(x, other, neighbours=nbr)
        with pytest.raises(ValueError, match="is not the graph of neighbours"):
            conv(x, edge_index[:, :89], neighbours=nbr)
        with pytest.raises(ValueError, match=r"ids must lie in \[0, 10\)"):
            conv(x, neighbours=nbr + 5)


@pytest.mark.parametrize("name", list(CONVS))
def test_batched_node_features_are_refused_with_the_flat_form(name):
    conv = CONVS[name]()
    x = torch.randn(2, 6, 8)  # B=2 graphs of N=6 nodes (N == out_channels: would run silently)
    with pytest.raises(ValueError, match=r"must be \[num_nodes, F\], got source \(2, 6, 8\).*"
                                         r"\[B \* N, F\].*\[B, N, k\]"):
        conv(x, neighbours=torch.zeros(2, 6, 2, dtype=torch.long))


@pytest.mark.parametrize("aggr", AGGRS)
@pytest.mark.parametrize("name", list(CONVS))
def test_table_without_neighbours_is_the_no_edge_layer(name, aggr):
    conv = CONVS[name](aggr=aggr).eval()
    x = torch.randn(12, 8)
    no_edges = conv(x, torch.empty(2, 0, dtype=torch.long))
    assert torch.isfinite(no_edges).all()
    for table in (torch.empty(12, 0, dtype=torch.long), torch.empty(2, 6, 0, dtype=torch.long)):
        assert torch.equal(conv(x, neighbours=table), no_edges)


@pytest.mark.parametrize("aggr", ["max", "min"])
@pytest.mark.parametrize("name", list(CONVS))
def test_extremum_gradient_is_exact_when_a_neighbour_duplicates_its_centre(name, aggr):
    # node 1 duplicates node 0, so one relation is exactly 0 and is the extremum: propagate
    # must give the gradient of the fused path and of the per-edge reference (PyG's zero-filled
    # scatter halves it)
    torch.manual_seed(0)
    conv = CONVS[name](aggr=aggr).double().eval()
    x = torch.randn(8, 8, dtype=torch.float64)
    x[1] = x[0]
    sign = 1.0 if aggr == "max" else -1.0
    x[2:] = x[0] - sign * (0.5 + torch.rand(6, 8, dtype=torch.float64))  # far on the other side
    nbr = torch.tensor([[1, 2, 3]] + [[0, 4, 5]] * 7)
    edge_index = neighbours_to_edge_index(nbr)
    grads = []
    for call in (lambda t: conv(t, neighbours=nbr), lambda t: conv(t, edge_index),
                 lambda t: reference(conv, t, edge_index)):
        inp = x.clone().requires_grad_(True)
        grads.append(torch.autograd.grad(call(inp).pow(2).sum(), inp)[0])
    assert torch.allclose(grads[1], grads[2], atol=1e-10)
    assert torch.allclose(grads[0], grads[2], atol=1e-10)


@pytest.mark.parametrize("cls", [RGConv, MRConv])
@pytest.mark.parametrize("channels", [(-1, 8), ((8, 8), 8), (8, 0), (8.0, 8)])
def test_lazy_and_paired_channel_sizes_are_refused_clearly(cls, channels):
    with pytest.raises(ValueError, match=rf"{cls.__name__}: (in|out)_channels must be a "
                                         r"positive int.*lazy -1 and \(source, target\)"):
        cls(*channels)


@pytest.mark.parametrize("name", list(CONVS))
@pytest.mark.parametrize("aggr", AGGRS)
def test_a_batch_of_no_graphs_gives_no_rows(name, aggr):
    # e.g. a video frame with no face: [0, N, F] nodes and a [0, N, k] table
    conv = CONVS[name](aggr=aggr).eval()
    nbr = dilated_knn(torch.randn(0, 10, 8), 3)
    assert nbr.shape == (0, 10, 3)
    assert conv(torch.randn(0, 8), neighbours=nbr).shape == (0, 6)


def _docs_example_model():
    """``PointNetLike`` of docs/graph_ops.md's "RG-Conv in your own PyG model"."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "docs" / "graph_ops.md").read_text()
    section = text.split("## RG-Conv in your own PyG model", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {}
    exec(compile(code, "docs/graph_ops.md", "exec"), namespace)
    return namespace["PointNetLike"]


def _unequal_batch():
    from torch_geometric.data import Batch, Data

    graphs_ = [Data(x=torch.randn(n, 3), y=torch.tensor([n % 2])) for n in (30, 40, 50, 35)]
    return Batch.from_data_list(graphs_)


def test_docs_example_compiles_on_graphs_of_unequal_sizes():
    # 'auto' picked torch-cluster for unequal graphs, which TorchDynamo cannot trace; under
    # torch.compile it now builds the graph densely (the same graph)
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = _docs_example_model()(3, 16, 2).eval()
    batch = _unequal_batch()
    compiled = torch.compile(model)
    with torch.no_grad():
        assert torch.allclose(compiled(batch.x, batch.batch), model(batch.x, batch.batch),
                              atol=1e-5)


def test_docs_example_rgconv_in_your_own_pyg_model():
    """The example in docs/graph_ops.md runs and trains on graphs of unequal sizes."""
    torch.manual_seed(0)
    batch = _unequal_batch()
    model = _docs_example_model()(3, 16, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(batch.x, batch.batch), batch.y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
