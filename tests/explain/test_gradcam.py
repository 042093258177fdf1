import pytest
import torch

from pyg_fer import create_model
from pyg_fer.explain import grad_cam

SMALL = {
    "resnet18_fer": dict(img_size=32),
    "face2nodes_stem": dict(img_size=32, embed_dim=16, depth=2, grid_size=4, k=3),
}


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_shapes_and_range(name, method):
    torch.manual_seed(0)
    model = create_model(name, num_classes=3, **SMALL[name])
    x = torch.randn(2, 3, 32, 32)
    cam, cls = grad_cam(model, x, method=method, block=1)
    assert cam.shape == (2, 32, 32) and cls.shape == (2,)
    assert cam.min() >= 0 and cam.max() <= 1
    assert torch.equal(cls, model.eval()(x).argmax(1))


def test_flat_map_stays_zero_instead_of_stretched_upsampling_noise():
    # ResNet-18's stage 4 is 1x1 at 32 px: the map is constant, so it localises nothing
    torch.manual_seed(0)
    model = create_model("resnet18_fer", num_classes=3, img_size=32)
    cam, _ = grad_cam(model, torch.randn(2, 3, 32, 32), block=4)
    assert cam.shape == (2, 32, 32) and torch.equal(cam, torch.zeros_like(cam))
    cam, _ = grad_cam(model, torch.randn(2, 3, 32, 32), block=3)  # 2x2: a real map
    assert cam.amax(dim=(1, 2)).eq(1).all() and cam.amin(dim=(1, 2)).eq(0).all()


def test_bad_inputs():
    model = create_model("face2nodes_stem", num_classes=3, **SMALL["face2nodes_stem"])
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(ValueError, match="block=3 is out of range"):
        grad_cam(model, x, block=3)
    with pytest.raises(ValueError, match="unknown class name 'joy'"):
        grad_cam(model, x, "joy", class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"unknown class name 'joy'; known classes: \[\]"):
        grad_cam(model, x, "joy")  # a model without class names knows none


def test_class_names_default_to_the_models():
    torch.manual_seed(0)
    model = create_model("face2nodes_stem", class_names=["a", "b", "c"],
                         **SMALL["face2nodes_stem"])
    x = torch.randn(2, 3, 32, 32)
    cam, classes = grad_cam(model, x, "c")
    assert classes.tolist() == [2, 2]
    torch.testing.assert_close(cam, grad_cam(model, x, 2)[0], rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"known classes: \['a', 'b', 'c'\]"):
        grad_cam(model, x, "joy")
    with pytest.raises(ValueError, match="method"):
        grad_cam(model, x, method="lime")


def test_planted_signal_peaks_in_corner():
    # class 1 iff a bright patch sits in the top-left corner; train a tiny CNN briefly
    torch.manual_seed(0)
    model = create_model("resnet18_fer", num_classes=2, img_size=32)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for _ in range(15):
        x = torch.randn(16, 3, 32, 32) * 0.1
        y = torch.arange(16) % 2
        x[y == 1, :, :8, :8] += 3.0
        loss = torch.nn.functional.cross_entropy(model.train()(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = torch.randn(1, 3, 32, 32) * 0.1
    x[:, :, :8, :8] += 3.0
    cam, cls = grad_cam(model, x, 1, block=3)
    peak = int(cam[0].flatten().argmax())
    r, c = divmod(peak, 32)
    assert r < 16 and c < 16, (r, c)


@pytest.mark.parametrize("name", __import__("pyg_fer").list_models())
def test_every_registered_model(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=3, img_size=32)
    cam, cls = grad_cam(model, torch.randn(2, 3, 32, 32), block=1, method="gradcam++")
    assert cam.shape == (2, 32, 32) and torch.isfinite(cam).all()
    assert cam.min() >= 0 and cam.max() <= 1 and cls.shape == (2,)


def _hooked_nodes(model, x, target):
    """Block 1's node features [N, D] and their gradient of logit ``target``, by hand."""
    store = {}

    def hook(_m, _i, out):
        out.retain_grad()
        store["act"] = out

    handle = model.blocks[0].register_forward_hook(hook)
    try:
        model(x)[0, target].backward()
    finally:
        handle.remove()
    return store["act"][0].detach(), store["act"].grad[0]


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_graph_cam_is_the_formula_on_the_nodes(method):
    # Recomputed on the nodes [N, D] without any reshape: a node/channel mix-up in the
    # [B, N, D] -> [B, D, h, w] reshape (N = D = 16 here, so it would not even raise) changes
    # every map. Node n is cam.flatten()[n].
    torch.manual_seed(0)
    model = create_model("face2nodes_stem", num_classes=3,
                         **SMALL["face2nodes_stem"]).eval()
    x = torch.randn(1, 3, 32, 32)
    for target in range(3):
        act, grad = _hooked_nodes(model, x, target)
        if method == "gradcam":
            weights = grad.mean(0)
        else:
            g2, g3 = grad.pow(2), grad.pow(3)
            denom = 2 * g2 + act.sum(0) * g3
            alpha = torch.where(denom != 0, g2 / denom, torch.zeros_like(g2))
            weights = (alpha * grad.clamp_min(0)).sum(0)
        raw = (act * weights).sum(1)
        if target == 1:  # every node negative: the ReLU leaves a flat map, drawn as all 0
            assert raw.max() < 0
            ref = torch.zeros(16)
        else:
            ref = raw.clamp_min(0)
            ref = (ref - ref.min()) / (ref.max() - ref.min())
        cam, cls = grad_cam(model, x, target, block=1, upsample=False, method=method)
        assert cam.shape == (1, 4, 4) and cls.tolist() == [target]
        torch.testing.assert_close(cam[0].flatten(), ref, rtol=0, atol=1e-4)


def test_class_index_equal_to_num_classes_is_out_of_range():
    model = create_model("face2nodes_stem", num_classes=3, **SMALL["face2nodes_stem"])
    with pytest.raises(ValueError, match=r"^class index 3 is out of range 0\.\.2$"):
        grad_cam(model, torch.randn(1, 3, 32, 32), 3)


class _ToyCNN(torch.nn.Module):
    """One 'ResNet stage': a 2x2/stride-2 conv to two channels, all ones and all twos; the
    logits [m, -m] read channel 0's mean m only, so channel 1's gradient is exactly 0."""

    def __init__(self):
        super().__init__()
        conv = torch.nn.Conv2d(1, 2, 2, stride=2, bias=False)
        with torch.no_grad():
            conv.weight[0].fill_(1.0)
            conv.weight[1].fill_(2.0)
        self.stages = torch.nn.ModuleList([conv])
        self.cfg = {"class_names": ["up", "down"]}

    def forward(self, x):
        m = self.stages[0](x)[:, 0].mean(dim=(1, 2))
        return torch.stack([m, -m], dim=1)


_TOY_IMAGE = torch.tensor([[[[1.0, 1.0, 0.0, 0.0],
                             [1.0, 1.0, 0.0, 0.0],
                             [0.0, 0.0, -1.0, -1.0],
                             [2.0, 0.0, -1.0, -1.0]]]])


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_toy_cnn_maps_are_exact(method):
    # Channel 0 is [[4, 0], [2, -4]]; the "up" logit weighs it positively (a channel with zero
    # gradient must not turn Grad-CAM++'s 0/0 into NaN), "down" negatively: Grad-CAM then
    # keeps the -4 cell alone, Grad-CAM++ (positive gradients only) weighs nothing: all 0.
    model = _ToyCNN().train()
    native = torch.tensor([[1.0, 0.0], [0.5, 0.0]])
    cam, cls = grad_cam(model, _TOY_IMAGE, "up", method=method, upsample=False)
    assert cls.tolist() == [0] and model.training  # the mode is restored
    torch.testing.assert_close(cam[0], native)
    cam, _ = grad_cam(model, _TOY_IMAGE, "up", method=method)
    up = torch.nn.functional.interpolate(native[None, None], size=(4, 4), mode="bilinear",
                                         align_corners=False)[0, 0]
    torch.testing.assert_close(cam[0], up / up.max())
    cam, _ = grad_cam(model, _TOY_IMAGE, "down", method=method, upsample=False)
    down = torch.tensor([[0.0, 0.0], [0.0, 1.0]]) if method == "gradcam" else torch.zeros(2, 2)
    torch.testing.assert_close(cam[0], down)


def test_toy_cnn_frozen_model_and_argument_checks():
    model = _ToyCNN().requires_grad_(False)  # e.g. a deployed model: still explained
    cam, _ = grad_cam(model, _TOY_IMAGE, 0, upsample=False)
    torch.testing.assert_close(cam[0], torch.tensor([[1.0, 0.0], [0.5, 0.0]]))
    # explicit class names win over the model's
    assert grad_cam(model, _TOY_IMAGE, "up", class_names=["down", "up"])[1].tolist() == [1]
    with pytest.raises(ValueError, match=r"block=0 is out of range: _ToyCNN has ResNet stages "
                                         r"1\.\.1"):
        grad_cam(model, _TOY_IMAGE, block=0)
    with pytest.raises(ValueError, match=r"^class index -1 is out of range 0\.\.1$"):
        grad_cam(model, _TOY_IMAGE, -1)
    with pytest.raises(ValueError, match=r"images must be \[B, C, H, W\], got shape \(1, 4, 4\)"):
        grad_cam(model, _TOY_IMAGE[0])
