import pytest
import torch
import torch.nn.functional as F

from pyg_fer.models.backbone import ResNetTrunk
from pyg_fer.nn import MultiScalePatchEmbed, StemPatchEmbed, nodes_to_pyg
from pyg_fer.nn.embed import _resample


@pytest.mark.parametrize("grid", [7, 14, 28])
def test_msf2pe_paper_grids(grid):
    embed = MultiScalePatchEmbed(ResNetTrunk(), embed_dim=32, grid_size=grid).eval()
    out = embed(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, grid * grid, 32)
    assert embed.num_nodes == grid * grid
    assert torch.isfinite(out).all()


def test_msf2pe_feature_info_and_widths():
    embed = MultiScalePatchEmbed(ResNetTrunk(), embed_dim=48, grid_size=2, stage_channels=None)
    assert [f["num_chs"] for f in embed.feature_info[:4]] == [64, 128, 256, 512]
    assert [f["reduction"] for f in embed.feature_info[:4]] == [4, 8, 16, 32]
    assert [p.out_channels for p in embed.proj] == [64, 128, 256, 512]
    assert embed.fuse[0].in_channels == 960
    embed = MultiScalePatchEmbed(ResNetTrunk(), embed_dim=48, grid_size=2,
                                 stage_channels=(8, 16, 24, 32))
    assert embed.fuse[0].in_channels == 80
    embed = MultiScalePatchEmbed(ResNetTrunk(), embed_dim=48, grid_size=2)
    assert embed.fuse[0].in_channels == 4 * 64
    with pytest.raises(ValueError, match="stage_channels"):
        MultiScalePatchEmbed(ResNetTrunk(), stage_channels=(8, 16))


def test_pool_before_conv_equals_eq1():
    # Eq. (1) is AvgPool(Conv1x1(X)); pooling first is the same map (both linear, bias kept).
    conv = torch.nn.Conv2d(8, 5, 1)
    x = torch.randn(2, 8, 28, 28)
    assert torch.allclose(F.adaptive_avg_pool2d(conv(x), 7), conv(_resample(x, (7, 7))),
                          atol=1e-5)
    # Upsampling a stage smaller than the grid is bilinear, also commuting with the 1x1 conv.
    small = torch.randn(2, 8, 7, 7)
    up = _resample(small, (14, 14))
    assert torch.equal(up, F.interpolate(small, size=(14, 14), mode="bilinear",
                                         align_corners=False))
    assert torch.allclose(conv(up), _resample(conv(small), (14, 14)), atol=1e-5)


def test_msf2pe_node_order_is_row_major():
    embed = MultiScalePatchEmbed(ResNetTrunk(), embed_dim=16, grid_size=4).eval()
    x = torch.randn(1, 3, 128, 128)
    nodes = embed(x)
    fmap = embed.fuse(torch.cat([p(_resample(s, (4, 4))) for p, s in zip(
        embed.proj, _stage_maps(embed, x), strict=True)], 1))
    assert torch.allclose(nodes[0, 5], fmap[0, :, 1, 1], atol=1e-6)


def _stage_maps(embed, x):
    return embed.trunk(x)


class _TwoStageTrunk(torch.nn.Module):
    """Any module with forward_stem, stages and their feature_info can feed MSF²PE."""

    def __init__(self):
        super().__init__()
        self.stages = torch.nn.ModuleList([torch.nn.Conv2d(3, 4, 3, stride=4, padding=1),
                                           torch.nn.Conv2d(4, 6, 3, stride=2, padding=1)])
        self.feature_info = [dict(num_chs=4, reduction=4, module="stages.0"),
                             dict(num_chs=6, reduction=8, module="stages.1")]

    def forward_stem(self, x):
        return x


def test_msf2pe_takes_any_trunk():
    embed = MultiScalePatchEmbed(_TwoStageTrunk(), embed_dim=8, grid_size=2, stage_channels=3)
    assert [p.in_channels for p in embed.proj] == [4, 6]
    assert embed.fuse[0].in_channels == 6
    assert [f["module"] for f in embed.feature_info] == ["trunk.stages.0", "trunk.stages.1", "fuse"]
    assert embed(torch.randn(2, 3, 32, 32)).shape == (2, 4, 8)
    assert str(embed) == ("MultiScalePatchEmbed(_TwoStageTrunk, embed_dim=8, grid_size=(2, 2), "
                          "stage_channels=(3, 3))")
    with pytest.raises(ValueError, match=r"2 positive ints \(one per trunk stage\)"):
        MultiScalePatchEmbed(_TwoStageTrunk(), stage_channels=(8, 16, 24, 32))


def test_stem_shapes():
    stem = StemPatchEmbed(embed_dim=64)
    assert stem(torch.randn(2, 3, 224, 224)).shape == (2, 196, 64)
    stem7 = StemPatchEmbed(embed_dim=64, grid_size=7)
    assert stem7(torch.randn(1, 3, 224, 224)).shape == (1, 49, 64)
    assert stem7.pos_embed.shape == (1, 64, 7, 7)
    with pytest.raises(ValueError, match="divisible by 8"):
        StemPatchEmbed(embed_dim=20)


def test_grayscale_is_the_transforms_job():
    embed = MultiScalePatchEmbed(ResNetTrunk(), embed_dim=16, grid_size=2).eval()
    gray = torch.rand(1, 1, 64, 64)
    with pytest.raises(ValueError, match=r"\(1, 1, 64, 64\).*transform"):
        embed(gray)
    assert embed(gray.expand(-1, 3, -1, -1)).shape == (1, 4, 16)
    with pytest.raises(ValueError, match="in_chans"):
        MultiScalePatchEmbed(ResNetTrunk(), in_chans=1)


def test_nodes_to_pyg():
    x = torch.randn(3, 4, 5)
    flat, batch = nodes_to_pyg(x)
    assert torch.equal(flat[4 * 2 + 1], x[2, 1])
    assert batch.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    with pytest.raises(ValueError, match=r"\[B, N, D\]"):
        nodes_to_pyg(torch.randn(4, 5))
