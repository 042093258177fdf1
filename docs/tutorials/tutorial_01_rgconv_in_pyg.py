"""
RG-Conv in your own PyG model
=============================

:class:`~pyg_fer.nn.RGConv` and :class:`~pyg_fer.nn.DilatedKNNGraph` are ordinary PyTorch
Geometric building blocks: nothing in them is specific to faces. This tutorial builds a small
point-cloud classifier from them, trains it on a :class:`~torch_geometric.data.Batch` of graphs
of unequal sizes next to the same model with PyG's :class:`~torch_geometric.nn.conv.EdgeConv`,
and then shows how to pick the k-NN backend, the dilation and the gate, how to compile the model
with ``torch.compile``, and how to explain it with PyG's ``GNNExplainer``.

Everything runs on the CPU in a few seconds.
"""

# %%
# A toy data set: 2-D point clouds of three shapes
# ------------------------------------------------
# Each sample is a cloud of 24 to 48 points on a circle, a square outline or a cross, randomly
# rotated, scaled and jittered. Node features are the point coordinates; the class is the shape.
# The clouds differ in size, so a mini-batch is a PyG ``Batch`` with a ``batch`` vector.

import math
import time

import torch
from torch import nn
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader
from torch_geometric.nn import EdgeConv, global_max_pool

from pyg_fer.nn import DilatedKNNGraph, RGConv, dilated_knn_graph

torch.manual_seed(0)
torch.set_num_threads(1)
SHAPES = ["circle", "square", "cross"]


def point_cloud(shape: int, num_points: int) -> torch.Tensor:
    t = torch.rand(num_points)
    if shape == 0:  # circle
        pts = torch.stack([torch.cos(2 * math.pi * t), torch.sin(2 * math.pi * t)], 1)
    elif shape == 1:  # square outline: walk the perimeter
        s = 4 * t
        side = s.floor().clamp(max=3).long()
        u = 2 * (s - side) - 1
        corners = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
        normals = corners[side]
        tangent = torch.stack([-normals[:, 1], normals[:, 0]], 1)
        pts = normals + u[:, None] * tangent
    else:  # cross: two perpendicular bars
        u = 2 * t - 1
        bar = torch.rand(num_points) < 0.5
        pts = torch.stack([torch.where(bar, u, 0 * u), torch.where(bar, 0 * u, u)], 1)
    angle = 2 * math.pi * torch.rand(())
    cos_a, sin_a = torch.cos(angle), torch.sin(angle)
    rot = torch.tensor([[cos_a, -sin_a], [sin_a, cos_a]])
    scale = 0.7 + 0.6 * torch.rand(())
    return scale * pts @ rot.T + 0.05 * torch.randn(num_points, 2)


def make_dataset(n: int) -> list[Data]:
    graphs = []
    for i in range(n):
        y = i % len(SHAPES)
        x = point_cloud(y, int(torch.randint(24, 49, ())))
        graphs.append(Data(x=x, y=torch.tensor([y])))
    return graphs


train_set, test_set = make_dataset(240), make_dataset(120)
batch = Batch.from_data_list(train_set[:4])
print(batch)
print("points per cloud:", torch.bincount(batch.batch).tolist())

# %%
# Build the graph with ``DilatedKNNGraph``
# ----------------------------------------
# :class:`~pyg_fer.nn.DilatedKNNGraph` is a module and a PyG transform. On a ``Batch`` it sets
# ``edge_index`` from ``batch.x`` (or another ``feature_key``) and ``batch.batch``, so no edge
# crosses from one cloud into another. With ``k=6, dilation=2`` each point is joined to its 1st,
# 3rd, 5th, ... 11th nearest points (Face2Nodes Eq. 5): the same number of edges as plain 6-NN,
# spread over twice the neighbourhood.

to_graph = DilatedKNNGraph(k=6, dilation=2)
print(to_graph)
batch = to_graph(batch)
print("edge_index:", tuple(batch.edge_index.shape), "edges =", batch.num_nodes, "nodes x 6")
same_cloud = batch.batch[batch.edge_index[0]] == batch.batch[batch.edge_index[1]]
print("every edge stays inside its cloud:", bool(same_cloud.all()))

# %%
# The model
# ---------
# Two graph convolutions with residual widths, a global max pool per graph and a linear
# classifier. ``conv="rg"`` uses RG-Conv: each relation :math:`\mathbf{x}_j - \mathbf{x}_i` is
# re-weighted by a learned sigmoid gate, summed, and the centre is updated from
# :math:`[\mathbf{x}_i \Vert \mathbf{g}_i]`. ``conv="edge"`` uses PyG's EdgeConv
# (:math:`\max_j \mathrm{MLP}([\mathbf{x}_i \Vert \mathbf{x}_j - \mathbf{x}_i])`) with an MLP of
# the same shape as RG-Conv's update (Linear + BatchNorm + GELU). Both layers take
# ``(x, edge_index)``, so the model is the same apart from the constructor.


class PointCloudNet(nn.Module):
    def __init__(self, conv: str = "rg", hidden: int = 32, num_classes: int = 3) -> None:
        super().__init__()

        def make(cin: int, cout: int) -> nn.Module:
            if conv == "rg":
                return RGConv(cin, cout)
            mlp = nn.Sequential(nn.Linear(2 * cin, cout), nn.BatchNorm1d(cout), nn.GELU())
            return EdgeConv(mlp, aggr="max")

        self.conv1 = make(2, hidden)
        self.conv2 = make(hidden, hidden)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor,
                batch: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x, edge_index)
        h = self.conv2(h, edge_index)
        return self.head(global_max_pool(h, batch))


print(PointCloudNet("rg"))
print("parameters: RG-Conv model", sum(p.numel() for p in PointCloudNet("rg").parameters()),
      "| EdgeConv model", sum(p.numel() for p in PointCloudNet("edge").parameters()))

# %%
# Train both for a few epochs
# ---------------------------
# A standard PyG loop: ``DataLoader`` collates the clouds into a ``Batch``, the transform adds
# the graph, the loss is cross-entropy on the graph labels.


def accuracy(model: nn.Module, graphs: list[Data]) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for b in DataLoader(graphs, batch_size=64):
            b = to_graph(b)
            correct += int((model(b.x, b.edge_index, b.batch).argmax(1) == b.y).sum())
    return correct / len(graphs)


def fit(conv: str, epochs: int = 6) -> nn.Module:
    torch.manual_seed(0)
    model = PointCloudNet(conv)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loader = DataLoader(train_set, batch_size=32, shuffle=True)
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        total = 0.0
        for b in loader:
            b = to_graph(b)
            loss = nn.functional.cross_entropy(model(b.x, b.edge_index, b.batch), b.y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * b.num_graphs
        if epoch in (1, epochs // 2, epochs):
            print(f"{conv:4s} epoch {epoch}: loss {total / len(train_set):.3f}, "
                  f"test accuracy {accuracy(model, test_set):.1%}")
    print(f"{conv:4s} trained in {time.perf_counter() - start:.1f} s")
    return model


rg_model = fit("rg")
edge_model = fit("edge")

# %%
# Both models learn the shapes; at this toy size the comparison says that RG-Conv is a drop-in
# replacement, not which layer is better on point clouds.
#
# Picking the backend
# -------------------
# ``backend="dense"`` computes each graph's pairwise distances with one batched matrix product
# (graphs of unequal size are padded; padding is never chosen) and is pure PyTorch.
# ``backend="torch_cluster"`` calls ``torch_cluster.knn_graph`` and needs the
# ``pyg-fer[cluster]`` extra. ``"auto"`` (the default) takes ``"dense"`` unless the graphs
# differ in size and torch-cluster is installed. Both give the same edges:

try:
    import torch_cluster  # noqa: F401
    have_cluster = True
except ImportError:
    have_cluster = False

b = Batch.from_data_list(train_set[:8])
dense = dilated_knn_graph(b.x, k=6, dilation=2, batch=b.batch, backend="dense")
if have_cluster:
    cluster = dilated_knn_graph(b.x, k=6, dilation=2, batch=b.batch, backend="torch_cluster")
    print("dense and torch_cluster graphs equal:", torch.equal(dense, cluster))
else:
    print("torch-cluster is not installed here; backend='auto' uses 'dense'")

# %%
# At face-graph sizes (tens of nodes per graph) the dense backend is the faster one
# (``benchmarks/graph_ops.py``); torch-cluster pays off for large, sparse point clouds.
#
# Picking the dilation and the gate
# ---------------------------------
# Dilation widens the receptive field at no extra edges. Here is the mean length of an edge on
# the same clouds:

for d in (1, 2, 3):
    ei = dilated_knn_graph(b.x, k=6, dilation=d, batch=b.batch)
    length = (b.x[ei[0]] - b.x[ei[1]]).norm(dim=1).mean()
    print(f"dilation {d}: {ei.size(1)} edges, mean edge length {length:.3f}")

# %%
# Face2Nodes grows the dilation with depth, :math:`d_l = \lceil l/4 \rceil`
# (:func:`~pyg_fer.nn.dilation_schedule`); every centre needs at least :math:`k \cdot d`
# other nodes in its graph, otherwise the builder raises a ``ValueError`` naming the sizes.
#
# The gate :math:`h` is ``gate="scalar"`` by default (one weight per edge, the reading that
# matches the paper's parameter count) or ``gate="channel"`` (one weight per edge and channel):

for gate in ("scalar", "channel"):
    conv = RGConv(32, 32, gate=gate)
    print(conv, "->", sum(p.numel() for p in conv.gate_lin.parameters()), "gate parameters")

# %%
# ``aggr`` works as in any ``MessagePassing`` layer: ``RGConv(32, 32, aggr="max")`` takes the
# maximum of the gated relations instead of their sum.
#
# ``torch.compile``
# -----------------
# The layers compile without graph breaks (``fullgraph=True``). Compiling the trained model
# gives the same logits as eager mode. The first call compiles; the build of this page uses
# the ``aot_eager`` backend to keep it fast, the default ``inductor`` backend works the same
# way (``tests/nn/test_compile.py``).

rg_model.eval()
b = to_graph(Batch.from_data_list(test_set[:16]))
compiled = torch.compile(rg_model, fullgraph=True, backend="aot_eager")
with torch.no_grad():
    eager_logits = rg_model(b.x, b.edge_index, b.batch)
    compiled_logits = compiled(b.x, b.edge_index, b.batch)
print("compiled == eager:", torch.allclose(eager_logits, compiled_logits, atol=1e-5))

# %%
# Explaining predictions with ``GNNExplainer``
# --------------------------------------------
# RG-Conv honours PyG's explanation masks, so ``torch_geometric.explain`` works unchanged: the
# explainer learns a weight for every edge of the graph passed in, and a zero weight removes the
# edge's message. Here we explain the RG-Conv model's prediction for one cloud and draw the
# edges it found most important.

import matplotlib.pyplot as plt
from torch_geometric.explain import Explainer, GNNExplainer

cloud = to_graph(Batch.from_data_list([test_set[2]]))  # a cross
explainer = Explainer(
    rg_model, algorithm=GNNExplainer(epochs=50), explanation_type="model",
    node_mask_type=None, edge_mask_type="object",
    model_config=dict(mode="multiclass_classification", task_level="graph", return_type="raw"),
)
explanation = explainer(cloud.x, cloud.edge_index, batch=cloud.batch)
mask = explanation.edge_mask
print("predicted:", SHAPES[int(explanation.prediction.argmax())], "| true:", SHAPES[int(cloud.y)])
print(f"edge mask: {mask.numel()} edges, min {mask.min():.2f}, max {mask.max():.2f}")

# %%
# Each edge drawn with the opacity and width of its mask value:

fig, ax = plt.subplots(figsize=(5, 5))
pos = cloud.x
for (j, i), w in zip(cloud.edge_index.t().tolist(), mask.tolist(), strict=True):
    ax.plot([pos[j, 0], pos[i, 0]], [pos[j, 1], pos[i, 1]], color="tab:red", alpha=w,
            lw=0.5 + 2 * w)
ax.scatter(pos[:, 0], pos[:, 1], s=12, color="black", zorder=3)
ax.set_aspect("equal")
ax.set_title("GNNExplainer edge mask")
ax.set_xticks([])
ax.set_yticks([])
fig.tight_layout()

# %%
# Where to go next
# ----------------
# - Face2Nodes builds a new dilated k-NN graph from the features before every block
#   (:class:`~pyg_fer.nn.RDGCNBlock`): a "dynamic" graph. Do the same in your own model with
#   ``dilated_knn_graph(h, k, dilation, batch=batch)`` inside ``forward``. An explainer's edge
#   mask then no longer refers to the graph you pass in, so explain a model whose layers use
#   the given ``edge_index``, as above.
# - The neighbour-table form (:func:`~pyg_fer.nn.dilated_knn`, ``conv(x, neighbours=...)``)
#   is the fast path for equal-size graphs: see :doc:`../../graph_ops`.
