import pytest
import torch
import torch_geometric
from torch_geometric.data import Batch, Data

import pyg_fer.nn.knn as knn_module
from pyg_fer.nn import DilatedKNNGraph, dilated_knn, dilated_knn_graph, neighbours_to_edge_index

BACKENDS = ["dense"] + (["torch_cluster"] if knn_module.WITH_TORCH_CLUSTER else [])
needs_cluster = pytest.mark.skipif(
    not knn_module.WITH_TORCH_CLUSTER, reason="torch-cluster is not installed"
)


def reference_knn(x, k, dilation, batch, loop=False, cosine=False):
    """Brute force in float64: per centre, sort all candidates of its graph, keep every d-th."""
    x = x.double()
    if cosine:
        x = torch.nn.functional.normalize(x, dim=-1)
    src, dst = [], []
    for i in range(x.size(0)):
        cand = (batch == batch[i]).nonzero().view(-1)
        if not loop:
            cand = cand[cand != i]
        dist = (x[cand] - x[i]).pow(2).sum(-1)
        order = cand[torch.argsort(dist, stable=True)][: k * dilation : dilation]
        src.append(order)
        dst.append(torch.full_like(order, i))
    return torch.stack([torch.cat(src), torch.cat(dst)])


def neighbour_sets(edge_index, num_nodes):
    return [set(edge_index[0, edge_index[1] == i].tolist()) for i in range(num_nodes)]


def test_exact_values_on_a_line():
    x = torch.tensor([[0.0], [1.0], [3.0], [6.0], [10.0]])
    edge_index = dilated_knn_graph(x, k=2, backend="dense")
    # Node 0: 1 (d=1), 2 (d=3); node 3: 2 (d=3), 4 (d=4); node 4: 3 (d=4), 2 (d=7).
    assert edge_index.tolist() == [
        [1, 2, 0, 2, 1, 3, 2, 4, 3, 2],
        [0, 0, 1, 1, 2, 2, 3, 3, 4, 4],
    ]
    dilated = dilated_knn_graph(x, k=2, dilation=2, backend="dense")
    # Node 0 sorted: 1, 2, 3, 4 -> keep positions 0 and 2 -> 1, 3.
    assert dilated[:, :2].tolist() == [[1, 3], [0, 0]]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dilation", [1, 2, 3])
@pytest.mark.parametrize("loop", [False, True])
def test_matches_brute_force(backend, dilation, loop):
    x = torch.randn(3 * 20, 16)
    batch = torch.arange(3).repeat_interleave(20)
    out = dilated_knn_graph(x, 4, dilation, batch, loop=loop, backend=backend)
    assert out.shape == (2, 60 * 4)
    assert torch.equal(out, reference_knn(x, 4, dilation, batch, loop))


@pytest.mark.parametrize("backend", BACKENDS)
def test_unequal_graph_sizes(backend):
    sizes = [7, 15, 11]
    x = torch.randn(sum(sizes), 8)
    batch = torch.arange(3).repeat_interleave(torch.tensor(sizes))
    out = dilated_knn_graph(x, 3, 2, batch, backend=backend)
    assert torch.equal(out, reference_knn(x, 3, 2, batch))
    # No edge crosses graphs.
    assert torch.equal(batch[out[0]], batch[out[1]])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sizes", [[50, 50], [30, 50]])
def test_features_far_from_the_origin_get_exact_neighbours(backend, sizes):
    # float32 coordinates with a large shared offset per graph: the dense expansion
    # ||x_j||^2 - 2 x_i.x_j would rank by rounding noise unless each graph is centred first
    torch.manual_seed(0)
    x = torch.rand(sum(sizes), 3)
    x[: sizes[0]] += 1000.0
    x[sizes[0]:] -= 300.0
    batch = torch.arange(2).repeat_interleave(torch.tensor(sizes))
    out = dilated_knn_graph(x, 6, 1, batch, backend=backend)
    ref = reference_knn(x, 6, 1, batch)
    assert neighbour_sets(out, x.size(0)) == neighbour_sets(ref, x.size(0))


def test_three_dimensional_input_equals_batch_vector():
    x = torch.randn(4, 12, 6)
    batch = torch.arange(4).repeat_interleave(12)
    assert torch.equal(
        dilated_knn_graph(x, 3, 2), dilated_knn_graph(x.reshape(48, 6), 3, 2, batch)
    )


def test_every_centre_gets_exactly_k_and_no_self_loops():
    x = torch.randn(2, 49, 32)
    edge_index = dilated_knn_graph(x, 9, 2)
    counts = torch.bincount(edge_index[1], minlength=98)
    assert bool((counts == 9).all())
    assert bool((edge_index[0] != edge_index[1]).all())
    with_loops = dilated_knn_graph(x, 9, 1, loop=True)
    assert torch.equal(with_loops[0, ::9], torch.arange(98))  # self is the nearest


@needs_cluster
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("cosine", [False, True])
def test_backends_agree_at_face2nodes_like_sizes(dilation, cosine):
    x = torch.randn(4 * 49, 64)
    batch = torch.arange(4).repeat_interleave(49)
    dense = dilated_knn_graph(x, 9, dilation, batch, cosine=cosine, backend="dense")
    cluster = dilated_knn_graph(x, 9, dilation, batch, cosine=cosine, backend="torch_cluster")
    assert neighbour_sets(dense, x.size(0)) == neighbour_sets(cluster, x.size(0))


@needs_cluster
def test_backends_agree_on_three_dimensional_input():
    # [B, N, F] input: each of the B graphs is searched on its own by both backends.
    x = torch.randn(5, 20, 16)
    dense = dilated_knn_graph(x, 4, 2, backend="dense")
    cluster = dilated_knn_graph(x, 4, 2, backend="torch_cluster")
    assert torch.equal(cluster, dense)
    assert torch.equal(dense[0] // 20, dense[1] // 20)  # no edge crosses graphs


def test_relabelling_nodes_relabels_the_graph():
    x = torch.randn(30, 5)
    perm = torch.randperm(30)
    edge_index = dilated_knn_graph(x, 4, 2)
    permuted = dilated_knn_graph(x[perm], 4, 2)
    # Node a of the permuted input is node perm[a] of the original.
    mapped = perm[permuted]
    assert sorted(map(tuple, mapped.t().tolist())) == sorted(map(tuple, edge_index.t().tolist()))


def test_cosine_ignores_feature_scale():
    x = torch.randn(25, 6)
    scaled = x * torch.rand(25, 1).add(0.5).mul(10)
    graph = dilated_knn_graph(x, 3, cosine=True)
    assert torch.equal(graph, dilated_knn_graph(scaled, 3, cosine=True))
    single = torch.zeros(25, dtype=torch.long)
    assert torch.equal(graph, reference_knn(x, 3, 1, single, cosine=True))


def test_dense_chunking_gives_the_same_graph(monkeypatch):
    x = torch.randn(3, 40, 8)
    full = dilated_knn_graph(x, 5, 2)
    monkeypatch.setattr(knn_module, "_DENSE_CHUNK_BYTES", 3 * 40 * 4 * 7)  # 7 rows a chunk
    assert torch.equal(dilated_knn_graph(x, 5, 2), full)


@pytest.mark.parametrize("chunk_rows", [None, 7])
def test_eager_self_pair_fill_equals_the_traced_mask(monkeypatch, chunk_rows):
    # Eagerly the self pairs are excluded by an in-place diagonal fill (offset by the chunk's
    # first row); compiled, exported or traced, by an out-of-place mask. Same graph, chunked
    # or not, and both equal brute force.
    x = torch.randn(3, 40, 8)
    if chunk_rows:
        monkeypatch.setattr(knn_module, "_DENSE_CHUNK_BYTES", 3 * 40 * 4 * chunk_rows)
    eager = dilated_knn_graph(x, 5, 2)
    monkeypatch.setattr(knn_module, "_tracing", lambda: True)
    assert torch.equal(dilated_knn_graph(x, 5, 2), eager)
    batch = torch.arange(3).repeat_interleave(40)
    assert torch.equal(eager, reference_knn(x.view(120, 8), 5, 2, batch))


def test_stochastic_dilation_picks_k_of_the_kd_nearest():
    x = torch.randn(20, 4)
    dense_kd = dilated_knn_graph(x, 6, 1)  # the 6 nearest, sorted
    out = dilated_knn_graph(x, 3, 2, epsilon=1.0)
    nearest = dense_kd[0].view(20, 6)
    chosen = out[0].view(20, 3)
    cols = [(nearest[0] == c).nonzero().item() for c in chosen[0]]
    assert cols == sorted(cols)  # still sorted by distance
    for i in range(20):  # the same positions for every centre
        assert torch.equal(chosen[i], nearest[i, cols])
    assert torch.equal(dilated_knn_graph(x, 3, 2, epsilon=0.0)[0], nearest[:, ::2].reshape(-1))


def test_module_repr_and_training_flag():
    module = DilatedKNNGraph(9, 2, stochastic=True, epsilon=1.0)
    assert str(module) == "DilatedKNNGraph(k=9, dilation=2, stochastic=True, epsilon=1.0)"
    assert str(DilatedKNNGraph(9)) == "DilatedKNNGraph(k=9, dilation=1)"
    x = torch.randn(30, 4)
    module.eval()
    assert torch.equal(module(x), dilated_knn_graph(x, 9, 2))


def test_module_on_data_and_batch():
    data_list = [Data(x=torch.randn(n, 3), edge_index=torch.tensor([[0], [1]]))
                 for n in (12, 7, 10)]
    batch = Batch.from_data_list(data_list)
    out = DilatedKNNGraph(3, 2)(batch)
    assert out is not batch and batch.edge_index.shape == (2, 3)
    assert torch.equal(out.edge_index, dilated_knn_graph(batch.x, 3, 2, batch.batch))
    # the batch still splits into its graphs, with each graph's own k-NN edges
    for i, part in enumerate(out.to_data_list()):
        assert torch.equal(part.edge_index, dilated_knn_graph(data_list[i].x, 3, 2))
    single = DilatedKNNGraph(2)(data_list[0])
    assert single.edge_index.shape == (2, 24)
    # the old edges' features do not travel to the new edges (as PyG's KNNGraph); other
    # attributes, the input and the batch's split stay as they were
    with_features = Data(x=torch.randn(6, 3), edge_index=torch.tensor([[0, 1], [1, 0]]),
                         edge_attr=torch.randn(2, 4), edge_weight=torch.ones(2),
                         edge_type=torch.zeros(2, dtype=torch.long), y=torch.tensor([1]),
                         edge_label_index=torch.tensor([[0], [5]]))
    rebuilt = DilatedKNNGraph(2)(with_features)
    assert sorted(rebuilt.keys()) == ["edge_index", "edge_label_index", "x", "y"]
    assert with_features.edge_attr.shape == (2, 4)
    three = Batch.from_data_list([with_features, with_features.clone(), with_features.clone()])
    out = DilatedKNNGraph(2)(three)
    assert "edge_attr" not in out and out.ptr.tolist() == [0, 6, 12, 18]
    assert [part.edge_index.shape for part in out.to_data_list()] == [(2, 12)] * 3
    with pytest.raises(ValueError, match="'pos'"):
        DilatedKNNGraph(2, feature_key="pos")(data_list[0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x=torch.randn(10, 3), k=5, dilation=2), r"5 \* 2 = 10 exceeds the 9 candidate"),
        (dict(x=torch.randn(10, 3), k=10, loop=True, dilation=2), r"20 exceeds the 10"),
        (dict(x=torch.randn(10, 3), k=2, batch=torch.zeros(9, dtype=torch.long)),
         r"batch of shape \(9,\) does not match x of shape \(10, 3\)"),
        (dict(x=torch.randn(10, 3), k=2, batch=torch.tensor([1, 0] * 5)), "must be sorted"),
        (dict(x=torch.randn(2, 5, 3), k=2, batch=torch.zeros(10, dtype=torch.long)),
         "either x of shape"),
        (dict(x=torch.tensor([[0.0], [float("nan")], [1.0]]), k=1), "NaN or infinite.*node 1"),
        (dict(x=torch.randn(10, 3), k=2, backend="faiss"), "unknown backend 'faiss'"),
        (dict(x=torch.randn(10, 3), k=0), "k must be a positive int"),
        (dict(x=torch.randn(10), k=2), r"shape \[num_nodes, F\]"),
    ],
)
def test_bad_input_raises_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dilated_knn_graph(**kwargs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_nodes_give_an_empty_table(backend):
    assert dilated_knn(torch.randn(0, 49, 16), 9, 2, backend=backend).shape == (0, 49, 9)
    assert dilated_knn(torch.randn(0, 16), 9, backend=backend).shape == (0, 9)
    empty = torch.zeros(0, dtype=torch.long)
    assert dilated_knn_graph(torch.randn(0, 16), 9, batch=empty, backend=backend).shape == (2, 0)


def test_torch_cluster_under_torch_compile_is_refused_and_auto_is_dense(monkeypatch):
    monkeypatch.setattr(knn_module, "_is_compiling", lambda: True)
    monkeypatch.setattr(knn_module, "WITH_TORCH_CLUSTER", True)
    x, batch = torch.randn(10, 3), torch.tensor([0] * 6 + [1] * 4)
    with pytest.raises(ValueError, match="cannot run under torch.compile"):
        dilated_knn_graph(x, 2, batch=batch, backend="torch_cluster")
    assert torch.equal(dilated_knn_graph(x, 2, batch=batch), reference_knn(x, 2, 1, batch))


def test_smallest_graph_is_named_in_the_error():
    x = torch.randn(14, 3)
    batch = torch.tensor([0] * 10 + [1] * 4)
    with pytest.raises(ValueError, match=r"smallest graph \(4 nodes"):
        dilated_knn_graph(x, 2, 2, batch)


def test_torch_cluster_backend_without_the_package(monkeypatch):
    monkeypatch.setattr(knn_module, "WITH_TORCH_CLUSTER", False)
    with pytest.raises(ValueError, match=r"pyg-fer\[cluster\]"):
        dilated_knn_graph(torch.randn(10, 3), 2, backend="torch_cluster")
    # 'auto' falls back to the dense path for unequal graphs.
    batch = torch.tensor([0] * 6 + [1] * 4)
    x = torch.randn(10, 3)
    assert torch.equal(dilated_knn_graph(x, 2, batch=batch), reference_knn(x, 2, 1, batch))


def _batchnormed_features(seed=0):
    """Face2Nodes-sized node features after BatchNorm (B=8, N=49, D=512), as a block sees."""
    torch.manual_seed(seed)
    x = torch.randn(8, 49, 512) @ torch.randn(512, 512) / 8 + torch.randn(512)
    return torch.nn.functional.batch_norm(x.view(-1, 512), None, None, training=True).view(x.shape)


@pytest.mark.parametrize("backend", BACKENDS)
def test_neighbours_under_autocast_equal_float32(backend):
    x = _batchnormed_features()
    expected = dilated_knn(x, 9, 2, backend=backend)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(dilated_knn(x, 9, 2, backend=backend), expected)
    # Low-precision input is ranked in float32 too: the same as its float32 copy.
    half = x.bfloat16()
    assert torch.equal(dilated_knn(half, 9, 2, backend=backend),
                       dilated_knn(half.float(), 9, 2, backend=backend))


def test_bfloat16_ranking_would_change_the_neighbours():
    # The precision rule matters on this input: ranking in bf16 keeps few neighbour sets.
    x = _batchnormed_features()
    low = x.bfloat16()
    sq = (low * low).sum(-1)
    score = torch.baddbmm(sq[:, None, :], low, low.transpose(1, 2), alpha=-2.0)
    score.diagonal(dim1=1, dim2=2).fill_(float("inf"))
    low_nbr = score.float().topk(18, dim=-1, largest=False).indices[..., ::2]
    exact = dilated_knn(x, 9, 2)
    same = (low_nbr.sort(-1).values == exact.sort(-1).values).all(-1).float().mean()
    assert same < 0.9


def test_block_checks_finite_features_only_under_debug():
    from pyg_fer.nn import RDGCNBlock

    block = RDGCNBlock(8, k=2).eval()
    x = torch.randn(1, 6, 8)
    x[0, 3, 0] = float("nan")
    block(x)  # no host read-back in a forward pass
    with torch_geometric.debug(), pytest.raises(ValueError, match="NaN or infinite"):
        block(x)


def test_neighbour_table_forms():
    x = torch.randn(3, 10, 4)
    nbr = dilated_knn(x, 3, 2)
    assert nbr.shape == (3, 10, 3) and int(nbr.min()) >= 0 and int(nbr.max()) < 10
    flat = dilated_knn(x.view(30, 4), 3, 2, batch=torch.arange(3).repeat_interleave(10))
    assert torch.equal(neighbours_to_edge_index(nbr), neighbours_to_edge_index(flat))
    assert torch.equal(neighbours_to_edge_index(nbr), dilated_knn_graph(x, 3, 2))
    with pytest.raises(ValueError, match=r"\[num_nodes, k\] or \[B, N, k\]"):
        neighbours_to_edge_index(torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(k=2, dilation=0), "dilation must be a positive int, got 0"),
        (dict(k=2.5), "k must be a positive int, got 2.5"),
        (dict(k=2, epsilon=1.5), r"epsilon must lie in \[0, 1\], got 1.5"),
        (dict(k=2, batch=torch.zeros(10)), "batch must hold integer graph ids, got dtype "
                                           "torch.float32"),
        (dict(k=2, batch=torch.tensor([-1] * 5 + [0] * 5)), "negative graph id -1"),
    ],
)
def test_more_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dilated_knn(torch.randn(10, 3), **kwargs)


def test_bounds_of_k_times_dilation():
    # all N - 1 others may be used; in [B, N, F] input the limit is per graph of N nodes
    assert dilated_knn(torch.randn(10, 3), 3, 3).shape == (10, 3)
    with pytest.raises(ValueError, match=r"5 \* 1 = 5 exceeds the 4 candidate neighbours of "
                                         r"the smallest graph \(5 nodes"):
        dilated_knn(torch.randn(2, 5, 3), 5)
    with pytest.raises(ValueError, match="must be sorted"):  # two graphs of one node, unsorted
        dilated_knn(torch.randn(2, 3), 1, batch=torch.tensor([1, 0]))


def test_graph_ids_may_skip_values():
    x = torch.randn(8, 3)
    skipping = torch.tensor([0, 0, 0, 0, 2, 2, 2, 2])
    contiguous = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    assert torch.equal(dilated_knn(x, 2, batch=skipping), dilated_knn(x, 2, batch=contiguous))


def test_float64_features_are_ranked_in_float64():
    # differences of 1e-10 around 1.0 vanish in float32 (every node would be a tie)
    x = torch.tensor([[1.0], [1.0 + 1e-10], [1.0 + 3e-10], [1.0 + 7e-10]], dtype=torch.float64)
    assert dilated_knn(x, 2).tolist() == [[1, 2], [0, 2], [1, 0], [2, 1]]


@needs_cluster
def test_torch_cluster_handles_duplicates_and_checks_finite_features():
    # three identical points: torch-cluster may return the two others and not the centre
    x = torch.tensor([[0.0], [0.0], [0.0], [5.0], [9.0]])
    nbr = dilated_knn(x, 1, backend="torch_cluster")
    assert nbr.shape == (5, 1) and nbr[3:].view(-1).tolist() == [4, 3]
    for i in range(3):
        assert int(nbr[i, 0]) in {0, 1, 2} - {i}
    with pytest.raises(ValueError, match="NaN or infinite.*node 1"):
        dilated_knn(torch.tensor([[0.0], [float("inf")], [1.0]]), 1, backend="torch_cluster")


def test_stochastic_dilation_draws_random_positions():
    x = torch.randn(20, 4)
    regular = dilated_knn(x, 3, 2)
    draws = [dilated_knn(x, 3, 2, epsilon=1.0) for _ in range(10)]
    assert any(not torch.equal(d, regular) for d in draws)


def test_module_arguments_reach_the_graph():
    with pytest.raises(ValueError, match="unknown backend 'faiss'"):
        DilatedKNNGraph(3, backend="faiss")
    assert str(DilatedKNNGraph(3, loop=True, cosine=True, backend="dense")) == (
        "DilatedKNNGraph(k=3, dilation=1, loop=True, cosine=True, backend=dense)")
    x = torch.randn(14, 4) * torch.rand(14, 1).add(0.1).mul(10)
    batch = torch.tensor([0] * 8 + [1] * 6)
    module = DilatedKNNGraph(2, 2, loop=True, cosine=True)  # training mode, not stochastic
    expected = dilated_knn_graph(x, 2, 2, batch, loop=True, cosine=True)
    assert torch.equal(module(x, batch), expected)
    assert torch.equal(module(Batch.from_data_list([Data(x=x[:8]), Data(x=x[8:])])).edge_index,
                       expected)
    # stochastic dilation is off unless asked for, even in training mode
    plain = DilatedKNNGraph(3, 2, epsilon=1.0)
    assert all(torch.equal(plain(x), dilated_knn_graph(x, 3, 2)) for _ in range(5))
