"""Detector (backbone + integral 3D heatmap head) and Shape Prior Network."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from maskpose.models.detector import (
    INPUT_MODES,
    Detector,
    DetectorConfig,
    cell_centres,
    depth_bin_centres,
    girth_from_logit,
    integral_regression,
    make_input,
    template_joints2d,
    template_logit_prior,
)
from maskpose.models.shape_prior import ShapePriorNet
from maskpose.skeleton import H36M17, H36M18


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tests run small convolutions; one intra-op thread is faster and far less sensitive to a
    busy machine (and to ``pytest -n 2`` oversubscription) than two. Restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _masks(b: int, s: int, seed: int = 0) -> torch.Tensor:
    """``b`` elliptic blob masks ``[b, 1, s, s]`` at different places."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(s, dtype=torch.float32), torch.arange(s, dtype=torch.float32), indexing="ij")
    out = []
    for _ in range(b):
        cx, cy = (torch.rand(2, generator=g) * 0.5 + 0.25).mul(s).tolist()
        out.append((((xx - cx) / (0.15 * s)) ** 2 + ((yy - cy) / (0.38 * s)) ** 2 < 1).float())
    return torch.stack(out)[:, None]


def _inputs(mode: str, b: int, s: int) -> torch.Tensor:
    rgb = torch.rand(b, 3, s, s, generator=torch.Generator().manual_seed(3))
    return make_input(mode, rgb, _masks(b, s))


# ----------------------------------------------------------------------------- shapes and ranges
@pytest.mark.parametrize("mode", sorted(INPUT_MODES))
def test_detector_shapes_and_ranges(mode):
    torch.manual_seed(0)
    cfg = DetectorConfig(input=mode)
    net = Detector(cfg)
    b, s = 3, 64
    x = _inputs(mode, b, s)
    assert x.shape == (b, INPUT_MODES[mode], s, s)
    out = net(x)
    j, d, h = H36M18.num_joints, cfg.depth_bins, s // cfg.heatmap_stride
    assert out["joints2d"].shape == (b, j, 2)
    assert out["depth"].shape == (b, j)
    assert out["heatmaps_2d"].shape == (b, j, h, h)
    assert out["depth_marginal"].shape == (b, j, d)
    assert out["confidence"].shape == (b, j)
    assert out["logits"].shape == (b, j, d, h, h)
    assert out["girth"].shape == (b,) and out["girth_logit"].shape == (b,)
    assert out["features"].shape[0] == b and out["features"].shape[-2:] == (h, h)
    for v in out.values():
        assert torch.isfinite(v).all()
    assert out["joints2d"].abs().max() <= 1.0 and out["depth"].abs().max() <= 1.0
    torch.testing.assert_close(out["heatmaps_2d"].sum(dim=(2, 3)), torch.ones(b, j))
    torch.testing.assert_close(out["depth_marginal"].sum(-1), torch.ones(b, j))
    assert (out["heatmaps_2d"] >= 0).all()
    assert ((out["confidence"] >= 0) & (out["confidence"] <= 1)).all()
    assert ((out["girth"] >= math.exp(-0.3) - 1e-6) & (out["girth"] <= math.exp(0.3) + 1e-6)).all()


@pytest.mark.parametrize("size,stride,stages", [(32, 4, 3), (96, 4, 3), (64, 8, 3), (64, 2, 3), (32, 1, 3), (64, 4, 2), (128, 4, 4)])
def test_detector_any_size_and_stride(size, stride, stages):
    net = Detector(DetectorConfig(heatmap_stride=stride, num_stages=stages, depth_bins=8))
    out = net(_masks(2, size))
    assert out["heatmaps_2d"].shape == (2, 18, size // stride, size // stride)
    torch.testing.assert_close(out["joints2d"][0], net.template_mu, atol=0.02, rtol=0)


def test_detector_non_square_and_other_joint_set():
    net = Detector(DetectorConfig(), joint_set=H36M17)
    out = net(torch.rand(2, 1, 96, 64))
    assert out["joints2d"].shape == (2, 17, 2) and out["heatmaps_2d"].shape == (2, 17, 24, 16)
    torch.testing.assert_close(out["joints2d"][0], net.template_mu, atol=0.02, rtol=0)


def test_detector_bad_input_and_config():
    net = Detector(DetectorConfig(input="mask"))
    with pytest.raises(ValueError, match="divisible"):
        net(torch.rand(1, 1, 60, 60))
    with pytest.raises(ValueError, match=r"\[B, 1, S, S\]"):
        net(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="input"):
        DetectorConfig(input="depth")
    with pytest.raises(ValueError, match="heatmap_stride"):
        DetectorConfig(heatmap_stride=16, num_stages=3)
    with pytest.raises(ValueError, match="heatmap_stride"):
        DetectorConfig(heatmap_stride=3)
    with pytest.raises(ValueError, match="depth_bins"):
        DetectorConfig(depth_bins=1)
    with pytest.raises(ValueError, match="needs the mask"):
        make_input("rgb_mask", torch.rand(1, 3, 8, 8), None)
    with pytest.raises(ValueError, match="needs the RGB"):
        make_input("rgb+mask", None, torch.rand(1, 1, 8, 8))


def test_make_input_modes():
    rgb, mask = torch.rand(2, 3, 8, 8), (torch.rand(2, 1, 8, 8) > 0.5).float()
    assert make_input("rgb", rgb, mask) is rgb
    assert make_input("mask", None, mask) is mask
    torch.testing.assert_close(make_input("rgb_mask", rgb, mask), rgb * mask)
    torch.testing.assert_close(make_input("rgb+mask", rgb, mask), torch.cat([rgb, mask], 1))


def test_parameter_count_default():
    n = Detector().num_parameters()
    assert 2e5 < n < 2e6, n


# ----------------------------------------------------------------------------- soft-argmax and coordinates
def _delta_logits(j, d, h, w, cells, big=1e4):
    """Logits ``[1, J, D, H, W]`` with all mass of joint k at ``cells[k] = (depth, row, col)``."""
    logits = torch.full((1, j, d, h, w), -big)
    for k, (dd, i, jj) in enumerate(cells):
        logits[0, k, dd, i, jj] = big
    return logits


def test_soft_argmax_delta_gives_cell_coordinates_exactly():
    s, h, w, d = 64, 16, 16, 16
    cells = [(0, 0, 0), (15, 15, 15), (3, 5, 11), (8, 12, 2), (7, 7, 8)]
    out = integral_regression(_delta_logits(len(cells), d, h, w, cells), (s, s))
    stride = s / w
    for k, (dd, i, jj) in enumerate(cells):
        # explicit formula: the input-pixel centre of the stride x stride block of cell (i, jj)
        px, py = stride * jj + (stride - 1) / 2, stride * i + (stride - 1) / 2
        expect = torch.tensor([2 * px / (s - 1) - 1, 2 * py / (s - 1) - 1])
        torch.testing.assert_close(out["joints2d"][0, k], expect, atol=1e-6, rtol=0)
        assert abs(out["depth"][0, k].item() - (2 * dd / (d - 1) - 1)) < 1e-6
    torch.testing.assert_close(out["confidence"], torch.ones(1, len(cells)), atol=1e-5, rtol=0)


def test_soft_argmax_uniform_gives_centre():
    out = integral_regression(torch.zeros(2, 3, 16, 16, 16), (64, 64))
    torch.testing.assert_close(out["joints2d"], torch.zeros(2, 3, 2), atol=1e-6, rtol=0)
    torch.testing.assert_close(out["depth"], torch.zeros(2, 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(out["confidence"], torch.zeros(2, 3), atol=1e-5, rtol=0)


def test_cell_centre_mapping_stride4_s64():
    s, stride = 64, 4
    c = cell_centres(s // stride, s, dtype=torch.float64)
    # cell i covers input pixels 4i..4i+3; its centre is pixel 4i + 1.5
    expect = torch.tensor([2 * (4 * i + 1.5) / 63 - 1 for i in range(16)], dtype=torch.float64)
    torch.testing.assert_close(c, expect, atol=1e-12, rtol=0)
    assert abs(c[0].item() - (2 * 1.5 / 63 - 1)) < 1e-12 and abs(c[-1].item() - (2 * 61.5 / 63 - 1)) < 1e-12
    # the same as average-pooling the normalised pixel-centre coordinates over each 4x4 block
    px = 2 * torch.arange(s, dtype=torch.float64) / (s - 1) - 1
    torch.testing.assert_close(F.avg_pool1d(px[None, None], stride)[0, 0], c)
    # stride 1: the pixel-centre convention itself
    torch.testing.assert_close(cell_centres(s, s, dtype=torch.float64), px)
    torch.testing.assert_close(depth_bin_centres(5), torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]))


def test_detector_heatmap_delta_maps_to_input_block_centre():
    """The detector's read-out maps heatmap cell (i, j) to the centre of input block (i, j)."""
    net = Detector(DetectorConfig(template_sigma=None))
    s = 64
    h = s // net.config.heatmap_stride
    i, j = 3, 13
    # a delta at one cell of the final logits (bypass the conv layers through a hook on `final`)
    def hook(_module, _inp, out):
        z = torch.full_like(out, -1e4)
        z[:, 0 * net.depth_bins + 4, i, j] = 1e4  # joint 0, depth bin 4
        return z
    handle = net.final.register_forward_hook(hook)
    out = net(_masks(1, s))
    handle.remove()
    x_px, y_px = 4 * j + 1.5, 4 * i + 1.5
    torch.testing.assert_close(out["joints2d"][0, 0], torch.tensor([2 * x_px / 63 - 1, 2 * y_px / 63 - 1]), atol=1e-6, rtol=0)
    assert out["heatmaps_2d"].shape[-1] == h and out["heatmaps_2d"][0, 0, i, j] > 0.999


# ----------------------------------------------------------------------------- template
def test_template_figure_is_upright_and_centred():
    mu = template_joints2d(H36M18, height=1.5)
    ix = H36M18.index
    y = lambda n: mu[ix(n), 1].item()
    x = lambda n: mu[ix(n), 0].item()
    assert y("head") < y("nose") < y("neck") < y("thorax") < y("spine") < y("pelvis")
    for side in "LR":
        assert y("pelvis") <= y(f"{side}Hip") + 1e-6 < y(f"{side}Knee") < y(f"{side}Ankle")
        assert y(f"{side}Shoulder") < y(f"{side}Elbow") < y(f"{side}Wrist")
    for n in ("Hip", "Knee", "Ankle", "Shoulder", "Elbow", "Wrist"):
        assert x(f"L{n}") > 0.05 and x(f"R{n}") < -0.05 and abs(x(f"L{n}") + x(f"R{n}")) < 1e-6
    assert abs(x("pelvis")) < 1e-6 and abs(x("head")) < 1e-6
    assert abs((mu[:, 1].max() - mu[:, 1].min()).item() - 1.5) < 1e-5
    assert abs((mu[:, 1].max() + mu[:, 1].min()).item()) < 1e-5


def test_template_prior_soft_argmax_is_the_template():
    mu = template_joints2d(H36M18)
    for size, h in ((64, 16), (64, 8), (128, 32)):
        prior = template_logit_prior(mu, 0.3, h, h, (size, size))   # [J, 1, H, W]
        out = integral_regression(prior[None].expand(1, -1, 4, -1, -1), (size, size))
        torch.testing.assert_close(out["joints2d"][0], mu, atol=1e-4, rtol=0)
    # without de-biasing the border pulls the feet inward
    prior = template_logit_prior(mu, 0.3, 16, 16, (64, 64), debias=False)
    out = integral_regression(prior[None], (64, 64))
    assert out["joints2d"][0, H36M18.index("LAnkle"), 1] < mu[H36M18.index("LAnkle"), 1] - 0.03


@pytest.mark.parametrize("mode", ["mask", "rgb"])
def test_untrained_detector_outputs_upright_template(mode):
    torch.manual_seed(1)
    net = Detector(DetectorConfig(input=mode))
    out = net(_inputs(mode, 4, 64))
    p = out["joints2d"]
    assert torch.isfinite(p).all()
    torch.testing.assert_close(p, net.template_mu.expand_as(p), atol=0.02, rtol=0)
    assert out["depth"].abs().max() < 0.05
    torch.testing.assert_close(out["girth"], torch.ones(4))
    ix = H36M18.index
    y, x = p[..., 1], p[..., 0]
    assert (y[:, ix("head")] < y[:, ix("pelvis")] - 0.5).all()             # head above pelvis
    assert (y[:, ix("LAnkle")] > 0.6).all() and (y[:, ix("RAnkle")] > 0.6).all()  # feet at the bottom
    for n in ("Hip", "Knee", "Ankle", "Shoulder", "Elbow", "Wrist"):
        assert (x[:, ix("L" + n)] > 0).all() and (x[:, ix("R" + n)] < 0).all()   # left joints at +x
    assert x[:, ix("pelvis")].abs().max() < 0.02


def test_no_template_prior_gives_centred_blob():
    torch.manual_seed(0)
    out = Detector(DetectorConfig(template_sigma=None))(_masks(2, 64))
    assert out["joints2d"].abs().max() < 0.05


def test_girth_bounds():
    g = girth_from_logit(torch.tensor([-1e3, 0.0, 1e3]))
    torch.testing.assert_close(g, torch.tensor([math.exp(-0.3), 1.0, math.exp(0.3)]))


# ----------------------------------------------------------------------------- training signal
def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    net = Detector(DetectorConfig(input="rgb+mask"))
    out = net(_inputs("rgb+mask", 2, 64))
    target = torch.rand(2, 18, 2) * 1.6 - 0.8
    loss = (out["joints2d"] - target).square().mean() + (out["depth"] - 0.3).square().mean() + (out["girth"] - 1.2).square().mean()
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().max() > 0, name


def test_tiny_optimisation_moves_joints_to_targets():
    """<= 100 Adam steps on 4 fixed mask images (32 px, 8x8 heatmaps): the soft-argmax output reaches
    given 2D targets (about 25 steps to 5 %)."""
    torch.manual_seed(0)
    net = Detector(DetectorConfig(input="mask"))
    x = _masks(4, 32, seed=1)
    g = torch.Generator().manual_seed(2)
    target = net.template_mu[None] + 0.25 * (torch.rand(4, 18, 2, generator=g) * 2 - 1)
    target[..., 0] += torch.linspace(-0.2, 0.2, 4)[:, None]
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = None
    for step in range(100):
        loss = (net(x)["joints2d"] - target).square().sum(-1).mean()
        first = loss.item() if first is None else first
        if loss.item() < 0.05 * first:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first, (first, loss.item(), step)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_detector_traceable():
    net = Detector(DetectorConfig()).eval()
    x = _masks(2, 64)
    traced = torch.jit.trace(net, x, strict=False)
    y = _masks(3, 64, seed=5)
    torch.testing.assert_close(traced(y)["joints2d"], net(y)["joints2d"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_detector_and_spn_on_cuda():
    torch.manual_seed(0)
    net = Detector(DetectorConfig(input="mask"))
    x = _masks(2, 64)
    ref = net(x)["joints2d"]
    net = net.cuda()
    out = net(x.cuda())
    torch.testing.assert_close(out["joints2d"].cpu(), ref, atol=1e-3, rtol=0)
    sum(v.float().square().sum() for v in out.values() if torch.is_tensor(v) and v.requires_grad).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing
    spn = ShapePriorNet().cuda()
    y = spn(x.cuda())
    y.mean().backward()
    assert y.shape == x.shape and ((y > 0) & (y < 1)).all()


# ----------------------------------------------------------------------------- shape prior network
@pytest.mark.parametrize("size", [16, 32, 48, 64])
def test_spn_shapes_and_range(size):
    torch.manual_seed(0)
    spn = ShapePriorNet()
    y = spn(torch.rand(2, 1, size, size))
    assert y.shape == (2, 1, size, size)
    assert ((y > 0) & (y < 1)).all()


def test_spn_configurable_and_errors():
    spn = ShapePriorNet(channels=[8, 16, 32, 64], groups=4)
    assert spn.levels == 3 and spn(torch.rand(1, 1, 32, 32)).shape == (1, 1, 32, 32)
    with pytest.raises(ValueError, match="divisible by 8"):
        spn(torch.rand(1, 1, 36, 36))
    with pytest.raises(ValueError, match="channels"):
        ShapePriorNet(channels=[])
    n = ShapePriorNet().num_parameters()
    assert 2e5 < n < 1e6, n


def _seg_dist(p, a, b):
    ab = b - a
    t = ((p - a) @ ab / (ab @ ab).clamp_min(1e-12)).clamp(0, 1)
    return (p - (a + t[..., None] * ab)).norm(dim=-1)


def test_spn_overfits_one_pair():
    """A thin skeleton mask -> a thick body mask, learned in <= 150 Adam steps."""
    torch.manual_seed(0)
    s = 32
    c = cell_centres(s, s)
    grid = torch.stack(torch.meshgrid(c, c, indexing="xy"), dim=-1)          # [S, S, (x, y)]
    mu = template_joints2d(H36M18)
    d = torch.stack([_seg_dist(grid, mu[b.child], mu[b.parent]) for b in H36M18.bones]).min(0).values
    skeleton = torch.exp(-d ** 2 / 0.003)[None, None]
    body = (d < 0.1).float()[None, None]
    spn = ShapePriorNet()
    opt = torch.optim.Adam(spn.parameters(), lr=3e-3)
    first = None
    for step in range(150):
        pred = spn(skeleton)
        loss = (pred - body).square().mean()
        first = loss.item() if first is None else first
        iou = ((pred > 0.5) & (body > 0.5)).sum() / ((pred > 0.5) | (body > 0.5)).sum()
        if loss.item() < 0.02 * first and iou > 0.97:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 * first, (first, loss.item(), step)
    assert iou > 0.95, iou
