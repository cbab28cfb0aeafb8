"""The arms' coverage pull (``loss.cover``): slow reference, gradcheck, and the behaviour it exists for."""
import math

import torch

from maskpose import losses as L
from maskpose.render import pixel_coords


def _seg_dist(px, py, a, b, r):
    """Obvious point-to-capsule-surface distance (normalised units) with torch scalars."""
    vx, vy = b[0] - a[0], b[1] - a[1]
    vv = vx * vx + vy * vy
    t = ((px - a[0]) * vx + (py - a[1]) * vy) / vv if float(vv.detach()) > 1e-12 else torch.zeros((), dtype=a.dtype)
    t = torch.clamp(t, 0.0, 1.0)
    qx, qy = px - a[0] - t * vx, py - a[1] - t * vy
    return torch.clamp(torch.sqrt(qx * qx + qy * qy + 1e-12) - r, min=0.0)


def reference(ao, bo, ro, ar, br, rr, target, covered, size, sigma):
    c = pixel_coords(size, dtype=torch.float64)
    total = torch.zeros((), dtype=torch.float64)
    half = (size - 1) / 2.0
    for n in range(ao.shape[0]):
        for y in range(size):
            for x in range(size):
                if not (target[n, y, x] > 0.5 and covered[n, y, x] < 0.5):
                    continue
                own = min((_seg_dist(c[x], c[y], ao[n, e], bo[n, e], ro[n, e]) * half for e in range(ao.shape[1])),
                          key=lambda t: float(t.detach()))
                riv = min((float(_seg_dist(c[x], c[y], ar[n, e], br[n, e], rr[n, e])) * half
                           for e in range(ar.shape[1])), default=math.inf)
                if float(own.detach()) < riv:
                    total = total + torch.log1p(own ** 2 / sigma ** 2)
    return total / (ao.shape[0] * size * size)


def _scene(seed=0, N=2, S=12, Eo=3, Er=2):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.rand(*s, generator=g, dtype=torch.float64)  # noqa: E731
    ao, bo, ro = r(N, Eo, 2) * 1.6 - 0.8, r(N, Eo, 2) * 1.6 - 0.8, 0.02 + 0.1 * r(N, Eo)
    ar, br, rr = r(N, Er, 2) * 1.6 - 0.8, r(N, Er, 2) * 1.6 - 0.8, 0.02 + 0.1 * r(N, Er)
    target = (r(N, S, S) > 0.4).double()
    covered = r(N, S, S)
    return ao, bo, ro, ar, br, rr, target, covered, S


def test_coverage_loss_matches_a_slow_reference_in_values_and_gradients():
    for seed in range(3):
        ao, bo, ro, ar, br, rr, target, covered, S = _scene(seed)
        leaves = [t.clone().requires_grad_(True) for t in (ao, bo, ro)]
        fast = L.coverage_loss(*leaves, ar, br, rr, target, covered, S, sigma_px=3.0)
        g_fast = torch.autograd.grad(fast, leaves)
        leaves_r = [t.clone().requires_grad_(True) for t in (ao, bo, ro)]
        ref = reference(*leaves_r, ar, br, rr, target, covered, S, 3.0)
        g_ref = torch.autograd.grad(ref, leaves_r)
        assert float(ref.detach()) > 0
        assert abs(float(fast.detach()) - float(ref.detach())) < 1e-10
        for gf, gr in zip(g_fast, g_ref):
            assert torch.allclose(gf, gr, atol=1e-10), (gf - gr).abs().max()


def test_coverage_loss_gradcheck_float64():
    ao, bo, ro, ar, br, rr, target, covered, S = _scene(5, N=2, S=10, Eo=2, Er=1)
    f = lambda a, b, r: L.coverage_loss(a, b, r, ar, br, rr, target, covered, S, sigma_px=2.0)  # noqa: E731
    assert torch.autograd.gradcheck(f, (ao.requires_grad_(), bo.requires_grad_(), ro.requires_grad_()),
                                    eps=1e-7, atol=1e-6)


def test_folded_arm_is_pulled_to_the_unexplained_strip_and_leg_pixels_are_left_to_the_leg():
    """A torso band covered by the body, an uncovered strip at its right (where a hanging arm would be),
    an arm folded up at the shoulder, and an uncovered blob next to the leg: descent on the loss moves
    the forearm down the strip; the blob, nearer the leg, costs nothing."""
    S = 32
    c = pixel_coords(S, dtype=torch.float64)
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    torso = (xx.abs() < 0.25) & (yy.abs() < 0.6)
    strip = (xx > 0.3) & (xx < 0.42) & (yy > -0.5) & (yy < 0.3)
    blob = (xx < -0.45) & (xx > -0.6) & (yy > 0.7)
    target = (torso | strip | blob).double()[None]
    covered = torso.double()[None]
    # own: upper arm from the shoulder (0.3, -0.55) folded up, forearm back to the shoulder
    a = torch.tensor([[[0.3, -0.55], [0.3, -0.75]]], dtype=torch.float64)
    b = torch.tensor([[[0.3, -0.75], [0.3, -0.55]]], dtype=torch.float64, requires_grad=True)
    r = torch.full((1, 2), 0.05, dtype=torch.float64)
    leg_a = torch.tensor([[[-0.35, 0.55]]], dtype=torch.float64)
    leg_b = torch.tensor([[[-0.35, 1.0]]], dtype=torch.float64)
    leg_r = torch.full((1, 1), 0.06, dtype=torch.float64)
    loss0 = L.coverage_loss(a, b, r, leg_a, leg_b, leg_r, target, covered, S)
    (g,) = torch.autograd.grad(loss0, b)
    assert g[0, 1, 1] < 0  # the forearm's free end goes down (+y) the strip
    # the blob alone: nearer the leg than the arm, no loss
    only_blob = blob.double()[None]
    z = L.coverage_loss(a, b, r, leg_a, leg_b, leg_r, only_blob, torch.zeros_like(only_blob), S)
    assert float(z) == 0.0
    # descent brings the forearm's end down the strip and the loss falls
    bb = b.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([bb], lr=0.02)
    for _ in range(100):
        loss = L.coverage_loss(a, bb, r, leg_a, leg_b, leg_r, target, covered, S)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.3 * float(loss0)
    assert float(bb[0, 1, 1]) > 0.0  # forearm end below the shoulder level, towards the strip's bottom


def test_coverage_loss_without_free_pixels_is_zero_with_a_graph():
    ao, bo, ro, ar, br, rr, target, covered, S = _scene(1)
    ao.requires_grad_(True)
    z = L.coverage_loss(ao, bo, ro, ar, br, rr, target, torch.ones_like(covered), S)
    assert float(z.detach()) == 0.0
    z.backward()
    assert ao.grad is not None and float(ao.grad.abs().sum()) == 0.0
