r"""Dilated k-nearest-neighbour graphs (Face2Nodes Eq. 5, DeepGCNs' dilated k-NN).

For every centre node :math:`v_i` the :math:`k \cdot d` nearest nodes of its graph are sorted by
distance, :math:`\{n_1, \dots, n_{kd}\}`, and every :math:`d`-th one is kept:

.. math::
    \mathcal{N}_d(v_i) = \{n_1, n_{1+d}, n_{1+2d}, \dots, n_{1+(k-1)d}\}.

Dilation is applied per centre, on that centre's own sorted list, so every centre gets exactly
``k`` neighbours.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch

try:  # torch-cluster is the optional ``pyg-fer[cluster]`` extra.
    import torch_cluster

    WITH_TORCH_CLUSTER = True
except ImportError:  # pragma: no cover - exercised where the extra is absent
    torch_cluster = None
    WITH_TORCH_CLUSTER = False

BACKENDS = ("auto", "dense", "torch_cluster")

# Bytes of distance matrix the dense backend materialises at once; rows are chunked beyond it.
_DENSE_CHUNK_BYTES = 1 << 28


def dilated_knn(
    x: Tensor,
    k: int,
    dilation: int = 1,
    batch: Tensor | None = None,
    loop: bool = False,
    cosine: bool = False,
    backend: str = "auto",
    epsilon: float = 0.0,
    validate: bool = True,
) -> Tensor:
    r"""The neighbour table of a dilated k-NN graph: for every centre node, the ids of its
    ``k`` dilated nearest neighbours, by increasing distance.

    This is the graph in the form the fused paths of :class:`~pyg_fer.nn.RGConv` and
    :class:`~pyg_fer.nn.MRConv` take (``neighbours=``); :func:`neighbours_to_edge_index`
    turns it into PyG's ``edge_index`` (what :func:`dilated_knn_graph` returns).

    Distances are ranked in float32 (float64 input stays float64) with autocast disabled,
    whatever the caller's autocast context or input precision, so autocast never changes the
    neighbours of given features (``docs/graph_ops.md``, precision rule).

    Args:
        x (torch.Tensor): Node features, either ``[num_nodes, F]`` (optionally with ``batch``)
            or ``[B, N, F]`` for ``B`` graphs of ``N`` nodes each.
        k (int): Number of neighbours per centre node.
        dilation (int, optional): Dilation rate :math:`d`: keep every :math:`d`-th of the
            :math:`k \cdot d` nearest nodes. (default: :obj:`1`)
        batch (torch.Tensor, optional): Sorted graph assignment vector ``[num_nodes]`` for the
            2-D form of ``x``. (default: :obj:`None`)
        loop (bool, optional): If :obj:`True`, a node may be its own neighbour (it is its own
            nearest one). (default: :obj:`False`)
        cosine (bool, optional): Rank neighbours by cosine distance instead of Euclidean
            distance. (default: :obj:`False`)
        backend (str, optional): ``"dense"`` (batched pairwise distances + ``topk``, pure
            PyTorch, chunked to bound memory), ``"torch_cluster"`` (``torch_cluster.knn_graph``)
            or ``"auto"``: ``"dense"`` unless the graphs differ in size and torch-cluster is
            installed (always ``"dense"`` under :func:`torch.compile`, which cannot trace
            torch-cluster). (default: :obj:`"auto"`)
        epsilon (float, optional): Stochastic dilation (DeepGCNs/ViG): with this probability,
            keep a random ``k`` of the ``k * dilation`` nearest nodes (one random choice of
            positions shared by all centres) instead of every ``dilation``-th. The draw is made
            on ``x``'s device, without a host synchronisation. Pass ``0`` in evaluation.
            (default: :obj:`0.0`)
        validate (bool, optional): Check that ``x`` holds only finite values (NaN/inf make the
            ranking meaningless). The check reads a value back to the host, so model code
            inside a forward pass turns it off and relies on
            :func:`torch_geometric.debug` to turn it back on. (default: :obj:`True`)

    Returns:
        torch.Tensor: ``[B, N, k]`` neighbour ids local to each graph for ``[B, N, F]`` input,
        ``[num_nodes, k]`` global node ids for ``[num_nodes, F]`` input.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend '{backend}'; expected one of {BACKENDS}")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if not isinstance(dilation, int) or dilation < 1:
        raise ValueError(f"dilation must be a positive int, got {dilation!r}")
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must lie in [0, 1], got {epsilon!r}")

    batched = x.dim() == 3
    shape = x.shape
    x, batch, num_graphs, sizes = _normalise_input(x, batch)
    if x.size(0) == 0:  # no nodes (e.g. a batch of no faces): no centres, no neighbours
        return torch.empty((*shape[:-1], k), dtype=torch.long, device=x.device)
    kd = k * dilation
    min_size = int(sizes.min()) if sizes is not None else x.size(0) // max(num_graphs, 1)
    available = min_size - (0 if loop else 1)
    if kd > available:
        raise ValueError(
            f"k * dilation = {k} * {dilation} = {kd} exceeds the {available} candidate "
            f"neighbours of the smallest graph ({min_size} nodes, loop={loop})"
        )

    equal_sizes = sizes is None
    compiling = _is_compiling()
    if backend == "auto":
        use_cluster = not equal_sizes and WITH_TORCH_CLUSTER and not compiling
        backend = "torch_cluster" if use_cluster else "dense"
    if backend == "torch_cluster" and not WITH_TORCH_CLUSTER:
        raise ValueError(
            "backend='torch_cluster' needs the torch-cluster package "
            "(pip install 'pyg-fer[cluster]'); use backend='dense' or 'auto'"
        )
    if backend == "torch_cluster" and compiling:
        raise ValueError("backend='torch_cluster' cannot run under torch.compile (TorchDynamo "
                         "cannot trace torch-cluster's operator); use backend='dense' or 'auto'")
    with torch.autocast(device_type=x.device.type, enabled=False):
        if x.dtype != torch.float64:
            x = x.float()
        if cosine:
            # For unit vectors ||a - b||^2 = 2 - 2 cos(a, b): Euclidean ranking == cosine ranking.
            x = F.normalize(x, p=2.0, dim=-1)
        if backend == "dense":
            nbr = _dense_sorted_neighbours(x, kd, loop, num_graphs, sizes, batched, validate)
        else:
            if validate:
                _check_finite(x, (x * x).sum(-1))
            if batch is None and num_graphs > 1:  # [B, N, F] input: graphs of N nodes each
                nodes = x.size(0) // num_graphs
                batch = torch.arange(num_graphs, device=x.device).repeat_interleave(nodes)
            nbr = _torch_cluster_sorted_neighbours(x, kd, loop, batch)
            if batched:  # global ids b * N + n -> local ids n
                nodes = shape[1]
                offset = torch.arange(num_graphs, device=x.device).mul_(nodes)
                nbr = nbr.view(num_graphs, nodes, kd) - offset.view(-1, 1, 1)
    return _select_dilated(nbr, k, dilation, epsilon)


def _is_compiling() -> bool:
    """Whether TorchDynamo is tracing (the one place the graph builders ask)."""
    return torch.compiler.is_compiling()


def neighbours_to_edge_index(neighbours: Tensor) -> Tensor:
    r"""PyG's ``edge_index`` of a neighbour table from :func:`dilated_knn`.

    Args:
        neighbours (torch.Tensor): ``[num_nodes, k]`` global source ids of each target node, or
            ``[B, N, k]`` ids local to each of ``B`` graphs of ``N`` nodes.

    Returns:
        torch.Tensor: ``[2, num_nodes * k]`` in the ``source_to_target`` layout (row 0 the
        neighbours :math:`j`, row 1 the centres :math:`i`, grouped by centre in node order);
        nodes of a ``[B, N, k]`` table are numbered ``b * N + n``.
    """
    if neighbours.dim() == 3:
        num_graphs, nodes, k = neighbours.shape
        offset = torch.arange(num_graphs, device=neighbours.device).mul_(nodes)
        neighbours = (neighbours + offset.view(-1, 1, 1)).view(num_graphs * nodes, k)
    elif neighbours.dim() != 2:
        raise ValueError(
            f"neighbours must have shape [num_nodes, k] or [B, N, k], got "
            f"{tuple(neighbours.shape)}"
        )
    num_nodes, k = neighbours.shape
    centre = torch.arange(num_nodes, device=neighbours.device).repeat_interleave(k)
    return torch.stack([neighbours.reshape(-1), centre], dim=0)


def dilated_knn_graph(
    x: Tensor,
    k: int,
    dilation: int = 1,
    batch: Tensor | None = None,
    loop: bool = False,
    cosine: bool = False,
    backend: str = "auto",
    epsilon: float = 0.0,
    validate: bool = True,
) -> Tensor:
    r"""Builds a dilated k-NN graph in feature space, as PyG's ``edge_index``.

    The same graph as :func:`dilated_knn` (see it for every argument and for the precision
    rule), flattened by :func:`neighbours_to_edge_index`.

    Returns:
        torch.Tensor: ``edge_index`` of shape ``[2, num_nodes * k]`` in the ``source_to_target``
        layout: row 0 holds neighbours :math:`j`, row 1 centres :math:`i`. Edges are grouped by
        centre in node order, each centre's neighbours sorted by increasing distance; nodes of
        ``[B, N, F]`` input are numbered ``b * N + n``.
    """
    return neighbours_to_edge_index(
        dilated_knn(x, k, dilation, batch, loop, cosine, backend, epsilon, validate)
    )


def _normalise_input(
    x: Tensor, batch: Tensor | None
) -> tuple[Tensor, Tensor | None, int, Tensor | None]:
    """Returns ``x`` as ``[num_nodes, F]`` plus the batch vector, graph count and sizes.

    ``sizes`` is :obj:`None` when all graphs have the same number of nodes (the fast path).
    """
    if x.dim() == 3:
        if batch is not None:
            raise ValueError(
                f"pass either x of shape [B, N, F] or a batch vector, not both "
                f"(x: {tuple(x.shape)}, batch: {tuple(batch.shape)})"
            )
        num_graphs, num_nodes, _ = x.shape
        return x.reshape(num_graphs * num_nodes, x.size(-1)), None, num_graphs, None
    if x.dim() != 2:
        raise ValueError(f"x must have shape [num_nodes, F] or [B, N, F], got {tuple(x.shape)}")
    if batch is None:
        return x, None, 1, None
    if batch.dim() != 1 or batch.numel() != x.size(0):
        raise ValueError(
            f"batch of shape {tuple(batch.shape)} does not match x of shape "
            f"{tuple(x.shape)}: expected [{x.size(0)}]"
        )
    if batch.dtype.is_floating_point or batch.dtype == torch.bool:
        raise ValueError(f"batch must hold integer graph ids, got dtype {batch.dtype}")
    if batch.numel() == 0:
        return x, batch, 0, None
    if batch.numel() > 1 and bool((batch[1:] < batch[:-1]).any()):
        raise ValueError("batch must be sorted (nodes of each graph contiguous, as in PyG)")
    if int(batch[0]) < 0:
        raise ValueError(f"batch holds a negative graph id {int(batch[0])}")
    sizes = torch.bincount(batch)
    sizes = sizes[sizes > 0]  # graph ids may skip values; empty graphs hold no centres
    num_graphs = sizes.numel()
    if bool((sizes == sizes[0]).all()):
        return x, batch, num_graphs, None
    return x, batch, num_graphs, sizes


def _check_finite(x: Tensor, sq_norm: Tensor) -> None:
    """Raise naming the first node of ``x`` with a NaN or infinite feature when the squared
    norms ``sq_norm`` (of ``x``, or of ``x`` centred per graph) are not all finite."""
    if not bool(torch.isfinite(sq_norm).all()):  # finite features <=> finite norms (barring
        bad = int((~torch.isfinite(x).all(-1)).nonzero()[0, 0])  # overflow)
        raise ValueError(f"x holds NaN or infinite features (first at node {bad})")


def _dense_sorted_neighbours(
    x: Tensor,
    kd: int,
    loop: bool,
    num_graphs: int,
    sizes: Tensor | None,
    batched: bool = False,
    validate: bool = False,
) -> Tensor:
    """Ids of each node's ``kd`` nearest, by increasing distance: local ``[B, N, kd]`` when
    ``batched``, else global ``[num_nodes, kd]``; ``validate`` checks the features are
    finite."""
    if sizes is None:
        n = x.size(0) // num_graphs
        x3 = x.view(num_graphs, n, -1)
        x3 = x3 - x3.mean(dim=1, keepdim=True)
        valid = None
    else:  # pad unequal graphs to the largest; padded columns are never chosen
        n = int(sizes.max())
        offsets = torch.cumsum(sizes, 0) - sizes
        local = torch.arange(x.size(0), device=x.device) - offsets.repeat_interleave(sizes)
        graph = torch.arange(num_graphs, device=x.device).repeat_interleave(sizes)
        x3 = x.new_zeros(num_graphs, n, x.size(-1))
        x3[graph, local] = x
        x3 = x3 - (x3.sum(dim=1, keepdim=True) / sizes.view(-1, 1, 1).to(x3.dtype))
        valid = torch.arange(n, device=x.device)[None, :] < sizes[:, None]
    # Each graph centred first: distances do not change, and the expansion below stays exact
    # for features far from the origin (at an offset of 1000, float32 ranks would be noise).
    sq = torch.linalg.vector_norm(x3, dim=-1).square_()
    if validate:  # a non-finite feature makes its graph's mean, so its whole row, non-finite
        _check_finite(x, sq)

    rows_per_chunk = max(1, _DENSE_CHUNK_BYTES // max(1, num_graphs * n * x3.element_size()))
    if _is_compiling():  # one chunk: no guard on the batch size when exported
        rows_per_chunk = n
    out = []
    for start in range(0, n, rows_per_chunk):
        stop = min(n, start + rows_per_chunk)
        # ||x_i - x_j||^2 - ||x_i||^2 = ||x_j||^2 - 2 x_i.x_j ranks j identically per row i.
        score = torch.baddbmm(sq[:, None, :], x3[:, start:stop], x3.transpose(1, 2), alpha=-2.0)
        if valid is not None:
            score.masked_fill_(~valid[:, None, :], float("inf"))
        if not loop:  # chunk row r - start is node r: exclude the pair (r, r)
            if _tracing():  # out of place, so torch.compile/export and ONNX trace it
                rows = torch.arange(start, stop, device=x.device)
                self_pair = rows[:, None] == torch.arange(n, device=x.device)[None, :]
                score = score.masked_fill(self_pair, float("inf"))
            else:  # eager: one kernel instead of four
                score.diagonal(offset=start, dim1=1, dim2=2).fill_(float("inf"))
        out.append(score.topk(kd, dim=-1, largest=False, sorted=True).indices)
    idx = out[0] if len(out) == 1 else torch.cat(out, dim=1)  # [B, n, kd], local ids

    if batched:
        return idx
    if sizes is None:
        base = torch.arange(num_graphs, device=x.device).mul_(n)
        return (idx + base[:, None, None]).reshape(-1, kd)
    offsets = torch.cumsum(sizes, 0) - sizes
    idx = idx + offsets[:, None, None]
    return idx[valid]  # drops the padded centre rows, keeps node order


def _tracing() -> bool:
    """Whether the call is being compiled, exported or traced rather than run eagerly."""
    return (_is_compiling() or torch.jit.is_tracing()
            or torch.jit.is_scripting())


def _torch_cluster_sorted_neighbours(
    x: Tensor, kd: int, loop: bool, batch: Tensor | None
) -> Tensor:
    """``torch_cluster.knn_graph``, then each centre's list sorted by distance and checked."""
    num_nodes = x.size(0)
    # Ask for one extra when self loops are dropped, so each centre keeps kd others.
    edge_index = torch_cluster.knn_graph(
        x, kd if loop else kd + 1, batch=batch, loop=True, flow="source_to_target"
    )
    src, dst = edge_index[0], edge_index[1]
    if not loop:
        keep = src != dst
        src, dst = src[keep], dst[keep]
    dist = (x[src] - x[dst]).pow(2).sum(-1)
    # Sort by (centre, distance): stable sort on distance, then stable sort on centre.
    order = torch.sort(dist, stable=True).indices
    order = order[torch.sort(dst[order], stable=True).indices]
    src, dst = src[order], dst[order]
    counts = torch.bincount(dst, minlength=num_nodes)
    start = torch.cumsum(counts, 0) - counts
    rank = torch.arange(dst.numel(), device=x.device) - start[dst]
    keep = rank < kd  # a duplicate of the centre can push self out of its first kd + 1
    src, dst = src[keep], dst[keep]
    if src.numel() != num_nodes * kd:
        short = int((torch.bincount(dst, minlength=num_nodes) < kd).nonzero()[0, 0])
        raise ValueError(f"torch_cluster returned fewer than {kd} neighbours for node {short}")
    return src.view(num_nodes, kd)


def _select_dilated(nbr: Tensor, k: int, dilation: int, epsilon: float) -> Tensor:
    """Keeps every ``dilation``-th of the sorted ``k * dilation`` ids on the last axis, or, with
    probability ``epsilon``, a random sorted ``k`` of them (drawn on the device: no sync)."""
    if dilation == 1:
        return nbr
    if epsilon == 0.0:
        return nbr[..., ::dilation]
    kd = k * dilation
    regular = torch.arange(0, kd, dilation, device=nbr.device)
    random = torch.randperm(kd, device=nbr.device)[:k].sort().values
    draw = torch.rand((), device=nbr.device) < epsilon
    return nbr.index_select(-1, torch.where(draw, random, regular))


def _rebatch_edges(data: Batch, batch: Tensor) -> None:
    """Point a :class:`~torch_geometric.data.Batch`'s bookkeeping at its new ``edge_index`` so
    ``get_example`` / ``to_data_list`` split it per graph: graph ``g`` owns the edges whose
    target lies in it (already grouped so by :func:`dilated_knn_graph`; a stable sort keeps
    it so)."""
    num_graphs = data.num_graphs
    graph_of_edge = batch[data.edge_index[1]]
    order = graph_of_edge.argsort(stable=True)
    data.edge_index = data.edge_index[:, order]
    counts = torch.bincount(graph_of_edge, minlength=num_graphs)
    data._slice_dict = dict(data._slice_dict)
    data._inc_dict = dict(data._inc_dict)
    data._slice_dict["edge_index"] = torch.cat([counts.new_zeros(1), counts.cumsum(0)]).cpu()
    nodes = torch.bincount(batch, minlength=num_graphs)
    data._inc_dict["edge_index"] = torch.cat([nodes.new_zeros(1), nodes.cumsum(0)[:-1]]).cpu()


#: Attributes that PyG layers read beside ``edge_index``, one entry per edge.
_EDGE_FEATURES = ("edge_attr", "edge_weight", "edge_type")


class DilatedKNNGraph(nn.Module):
    r"""Module and transform wrapper of :func:`dilated_knn_graph`.

    Called on a tensor it returns ``edge_index``; called on a PyG
    :class:`~torch_geometric.data.Data` or :class:`~torch_geometric.data.Batch` it returns a
    shallow copy whose ``edge_index`` is built from ``data[feature_key]`` (and ``data.batch``).
    The input's ``edge_attr``, ``edge_weight`` and ``edge_type`` describe its old edges and are
    not carried over (PyG's :class:`~torch_geometric.transforms.KNNGraph` drops ``edge_attr``
    likewise); other attributes, e.g. a link task's ``edge_label_index``, are kept. Stochastic
    dilation is active only in training mode.

    Args:
        k (int): Neighbours per node.
        dilation (int, optional): Dilation rate. (default: :obj:`1`)
        loop (bool, optional): Allow self loops. (default: :obj:`False`)
        cosine (bool, optional): Cosine instead of Euclidean distance. (default: :obj:`False`)
        backend (str, optional): ``"auto"``, ``"dense"`` or ``"torch_cluster"``.
            (default: :obj:`"auto"`)
        stochastic (bool, optional): Enable stochastic dilation in training.
            (default: :obj:`False`)
        epsilon (float, optional): Probability of a stochastic draw. (default: :obj:`0.2`)
        feature_key (str, optional): Attribute of a ``Data`` object the graph is built from.
            (default: :obj:`"x"`)
    """

    def __init__(
        self,
        k: int,
        dilation: int = 1,
        loop: bool = False,
        cosine: bool = False,
        backend: str = "auto",
        stochastic: bool = False,
        epsilon: float = 0.2,
        feature_key: str = "x",
    ) -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend '{backend}'; expected one of {BACKENDS}")
        self.k = k
        self.dilation = dilation
        self.loop = loop
        self.cosine = cosine
        self.backend = backend
        self.stochastic = stochastic
        self.epsilon = epsilon
        self.feature_key = feature_key

    def forward(self, x: Tensor | Any, batch: Tensor | None = None) -> Any:
        eps = self.epsilon if (self.stochastic and self.training) else 0.0
        if isinstance(x, Tensor):
            return dilated_knn_graph(
                x, self.k, self.dilation, batch, self.loop, self.cosine, self.backend, eps
            )
        data = copy.copy(x)
        feats = getattr(data, self.feature_key, None)
        if not isinstance(feats, Tensor):
            raise ValueError(f"the data object has no tensor attribute '{self.feature_key}'")
        batch = getattr(data, "batch", None)
        for key in _EDGE_FEATURES:  # they describe the edges being replaced
            if key in data:
                del data[key]
        data.edge_index = dilated_knn_graph(
            feats, self.k, self.dilation, batch, self.loop, self.cosine, self.backend, eps,
        )
        if isinstance(data, Batch) and batch is not None and hasattr(data, "_slice_dict"):
            _rebatch_edges(data, batch)
        return data

    def extra_repr(self) -> str:
        parts = [f"k={self.k}", f"dilation={self.dilation}"]
        if self.loop:
            parts.append("loop=True")
        if self.cosine:
            parts.append("cosine=True")
        if self.backend != "auto":
            parts.append(f"backend={self.backend}")
        if self.stochastic:
            parts.append(f"stochastic=True, epsilon={self.epsilon}")
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.extra_repr()})"
