r"""Models with a batch-level graph between their feature extractor and classifier (AGFN §3,
Fig. 2): ``agfn_resnet18``, ``baseline_gcn_resnet18`` and ``face2nodes_agfn``."""

from __future__ import annotations

from typing import Any, Iterator

from torch import Tensor, nn

from pyg_fer.models._builder import build_model_with_cfg
from pyg_fer.models._registry import register_model
from pyg_fer.models.backbone import ResNetTrunk
from pyg_fer.models.face2nodes import Face2Nodes
from pyg_fer.nn.agfn import AGFN, CosineThresholdGCN
from pyg_fer.nn.embed import check_images

__all__ = ["BatchGraphFER", "agfn_resnet18", "baseline_gcn_resnet18", "face2nodes_agfn"]

BACKBONES = ("resnet18", "face2nodes")
GRAPHS = ("poisson", "threshold")
FEATURE_ACTIVATIONS = ("relu", "none")


class BatchGraphFER(nn.Module):
    r"""Feature extractor → projection to emotional features → batch graph → classifier.

    The extractor's pooled features are projected to ``feature_dim`` "emotional feature
    vectors" by a one-layer MLP (Linear + BatchNorm, then ReLU unless
    ``feature_activation="none"``), normalised across the mini-batch by
    :class:`~pyg_fer.nn.AGFN` (``graph="poisson"``) or the fixed-threshold
    :class:`~pyg_fer.nn.CosineThresholdGCN` (``graph="threshold"``, AGFN's Baseline-GCN), and
    classified by a fully connected layer :math:`f` (AGFN §4.1).

    With ``backbone="face2nodes"`` the extractor is Face2Nodes' MSF²PE + RDGCN blocks, averaged
    over nodes (its own head is not used): Face2Nodes' graph representation normalised by AGFN
    across the batch.

    Args:
        num_classes (int): expression classes. (default: :obj:`7`)
        img_size (int): input size recorded in ``cfg``. (default: :obj:`224`)
        in_chans (int): image channels (3). (default: :obj:`3`)
        backbone (str): ``"resnet18"`` or ``"face2nodes"``. (default: ``"resnet18"``)
        weights: ResNet-18 / MSF²PE trunk weights (``None``, a torchvision weights enum or a
            local checkpoint path). (default: :obj:`None`)
        feature_dim (int): size of the emotional features. (default: :obj:`512`, §4.1)
        feature_activation (str): last layer of the projection: ``"relu"`` (non-negative
            features, so every cosine is ≥ 0) or ``"none"`` (BatchNorm output, centred, so
            cosines of unrelated samples scatter around 0 and the Poisson graph is sparser;
            see docs/design.md). (default: ``"relu"``)
        graph (str): ``"poisson"`` (AGFN) or ``"threshold"``. (default: ``"poisson"``)
        alpha, beta (float): initial sampler parameters. (default: :obj:`1.4`, :obj:`0.0`)
        num_samples (int): graphs drawn per training step. (default: :obj:`1`)
        eval_graph (str): ``"expected"``, ``"identity"`` or ``"bank"`` (see
            :class:`~pyg_fer.nn.AGFN`). (default: ``"identity"``)
        bank_size (int): training features kept for ``eval_graph="bank"``. (default: :obj:`255`)
        sampling (str): ``"independent"`` or ``"shared_threshold"``.
            (default: ``"independent"``)
        straight_through (str): ``"rate"`` (the paper's Eq. 11/14) or ``"prob"`` (see
            :class:`~pyg_fer.nn.PoissonGraph`). (default: ``"rate"``)
        edge_grad_to_features (bool): let the sampled edge weights pass gradient into the
            features and the backbone (not the paper's Eq. 10). (default: :obj:`False`)
        global_graph (bool): under DistributedDataParallel, build the training graph over the
            global batch (see :class:`~pyg_fer.nn.AGFN`; the engine sets it from
            ``agfn.global_graph``). (default: :obj:`False`)
        threshold (float): cosine threshold of ``graph="threshold"``. (default: :obj:`0.5`)
        drop_rate (float): dropout before the classifier. (default: :obj:`0.0`)
        **face2nodes_kwargs: Face2Nodes arguments for ``backbone="face2nodes"`` (``embed_dim``,
            ``grid_size``, ``depth``, ``k``, ``conv``, ...).
    """

    def __init__(
        self,
        num_classes: int = 7,
        img_size: int = 224,
        in_chans: int = 3,
        backbone: str = "resnet18",
        weights: Any = None,
        feature_dim: int = 512,
        feature_activation: str = "relu",
        graph: str = "poisson",
        alpha: float = 1.4,
        beta: float = 0.0,
        num_samples: int = 1,
        eval_graph: str = "identity",
        bank_size: int = 255,
        sampling: str = "independent",
        straight_through: str = "rate",
        edge_grad_to_features: bool = False,
        global_graph: bool = False,
        threshold: float = 0.5,
        drop_rate: float = 0.0,
        **face2nodes_kwargs: Any,
    ) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone '{backbone}'; expected one of {BACKBONES}")
        if graph not in GRAPHS:
            raise ValueError(f"unknown graph '{graph}'; expected one of {GRAPHS}")
        if feature_activation not in FEATURE_ACTIVATIONS:
            raise ValueError(f"unknown feature_activation '{feature_activation}'; expected one "
                             f"of {FEATURE_ACTIVATIONS}")
        if face2nodes_kwargs and backbone != "face2nodes":
            raise ValueError(
                f"unexpected keyword arguments {sorted(face2nodes_kwargs)} for backbone "
                f"'{backbone}' (they configure backbone='face2nodes')"
            )
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.backbone_name = backbone
        if backbone == "resnet18":
            self.trunk = ResNetTrunk("resnet18", weights)
            extractor_dim = self.trunk.stage_channels[-1]
        else:
            self.trunk = Face2Nodes(
                num_classes=1, img_size=img_size, in_chans=in_chans, weights=weights,
                **face2nodes_kwargs,
            )
            self.trunk.head = nn.Identity()  # features come from the node mean
            extractor_dim = self.trunk.num_features
        self.project = nn.Sequential(
            nn.Linear(extractor_dim, feature_dim), nn.BatchNorm1d(feature_dim),
            nn.ReLU() if feature_activation == "relu" else nn.Identity(),
        )
        if graph == "poisson":
            self.graph_norm: nn.Module = AGFN(
                feature_dim, feature_dim, alpha=alpha, beta=beta, num_samples=num_samples,
                eval_graph=eval_graph, sampling=sampling, bank_size=bank_size,
                straight_through=straight_through, edge_grad_to_features=edge_grad_to_features,
                global_graph=global_graph,
            )
        else:
            self.graph_norm = CosineThresholdGCN(feature_dim, feature_dim, threshold)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(feature_dim, num_classes)
        self.num_features = feature_dim

    def extract(self, x: Tensor) -> Tensor:
        """Emotional feature vectors before the batch graph, ``[B, feature_dim]``."""
        check_images(x, self.in_chans)
        if self.training and x.size(0) == 1:
            raise ValueError(
                "a training batch of 1 image: the projection to emotional features normalises "
                "over the batch (BatchNorm1d) and the batch graph links the images of a batch, "
                "which needs at least 2 images. Train with a batch size of 2 or more (the engine "
                "drops a last partial batch), or call model.eval() to predict one image"
            )
        if self.backbone_name == "resnet18":
            x = self.trunk(x)[-1].mean(dim=(2, 3))
        else:
            x = self.trunk.forward_features(x).mean(dim=1)
        return self.project(x)

    def forward_features(self, x: Tensor) -> Tensor:
        """Features normalised across the batch, ``[B, feature_dim]`` (for t-SNE)."""
        return self.graph_norm(self.extract(x))

    def forward_head(self, x: Tensor) -> Tensor:
        return self.fc(self.drop(x))

    def forward(self, x: Tensor, return_samples: bool = False) -> Tensor:
        """Logits ``[B, C]``; with ``return_samples=True`` ``[S, B, C]``, one row block per
        graph drawn in training (``S = 1`` otherwise), so that a loss can be averaged over the
        draws (AGFN Eq. 10)."""
        if not return_samples:
            return self.forward_head(self.forward_features(x))
        feats = self.extract(x)
        if isinstance(self.graph_norm, AGFN):
            return self.forward_head(self.graph_norm(feats, return_samples=True))
        return self.forward_head(self.graph_norm(feats)).unsqueeze(0)

    # Coordinate descent (AGFN §3.3) -------------------------------------------------------

    def graph_parameters(self) -> Iterator[nn.Parameter]:
        """The sampler's α, β (empty for the fixed-threshold graph)."""
        if isinstance(self.graph_norm, AGFN):
            return self.graph_norm.graph_parameters()
        return iter([])

    def network_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter but α, β."""
        graph_ids = {id(p) for p in self.graph_parameters()}
        return (p for p in self.parameters() if id(p) not in graph_ids)

    def set_agfn_enabled(self, enabled: bool) -> None:
        """``False``: no batch graph (each sample alone through the GCN weight), the baseline
        pre-trained before AGFN is inserted (§4.1); ``True``: the sampled graph."""
        if isinstance(self.graph_norm, AGFN):
            self.graph_norm.use_graph = bool(enabled)

    def rebuild_kwargs(self) -> dict[str, Any]:
        """Builder keywords whose current value a checkpoint must record instead of the one
        the model was built with: the evaluation graph, which may be switched after training
        (``model.graph_norm.eval_graph = "identity"``)."""
        if isinstance(self.graph_norm, AGFN):
            return {"eval_graph": self.graph_norm.eval_graph}
        return {}

    def set_global_graph(self, enabled: bool) -> None:
        """``True``: under DDP the training graph spans the global batch (AGFN's
        ``global_graph``); ``False``: each process's own batch."""
        if isinstance(self.graph_norm, AGFN):
            self.graph_norm.global_graph = bool(enabled)


def _build(name: str, defaults: dict, num_classes: int, kwargs: dict) -> BatchGraphFER:
    return build_model_with_cfg(
        BatchGraphFER, name, defaults, dict(kwargs, num_classes=num_classes)
    )


@register_model
def agfn_resnet18(*, num_classes: int = 7, **kwargs: Any) -> BatchGraphFER:
    """ResNet-18 → 512-d emotional features → AGFN → classifier (AGFN §4.1)."""
    return _build("agfn_resnet18", dict(backbone="resnet18", graph="poisson"), num_classes, kwargs)


@register_model
def baseline_gcn_resnet18(*, num_classes: int = 7, **kwargs: Any) -> BatchGraphFER:
    """AGFN's Table 1 Baseline-GCN: pairs with cosine > 0.5 linked, then a GCN."""
    return _build(
        "baseline_gcn_resnet18", dict(backbone="resnet18", graph="threshold"), num_classes, kwargs
    )


@register_model
def face2nodes_agfn(*, num_classes: int = 7, **kwargs: Any) -> BatchGraphFER:
    """Face2Nodes' graph representation (MSF²PE + RDGCN, node mean) normalised by AGFN."""
    return _build(
        "face2nodes_agfn", dict(backbone="face2nodes", graph="poisson"), num_classes, kwargs
    )
