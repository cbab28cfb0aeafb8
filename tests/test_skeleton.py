import numpy as np
import pytest
import torch

from maskpose import skeleton as sk


def test_h36m18_structure():
    js = sk.H36M18
    assert js.num_joints == 18 and len(js.bones) == 17
    assert js.joints[17] == "thorax" and js.index("LWrist") == 13
    # every joint but the root is the child of exactly one kinematic bone: a tree
    children = sorted(b.child for b in js.bones)
    assert children == list(range(1, 18))
    # the authors' parent list (reference-facts §1)
    parents = [0, 0, 1, 2, 0, 4, 5, 0, 17, 8, 9, 17, 11, 12, 17, 14, 15, 7]
    for b in js.bones:
        assert parents[b.child] == b.parent, b.name
    groups = {b.group for b in js.bones}
    assert groups == {"torso", "leg", "arm", "head"}
    arms = js.select_bones(["arm"])
    assert {b.name for b in arms} == {"L-upper-arm", "L-forearm", "R-upper-arm", "R-forearm"}
    assert all(b.width < 1 for b in arms)
    assert len(js.select_bones(fill=True)) == 25


def test_h36m17_without_thorax():
    js = sk.H36M17
    assert js.num_joints == 17 and "thorax" not in js.joints and len(js.bones) == 16
    assert js.bone("L-shoulder").parent == js.index("neck")
    assert sorted(b.child for b in js.bones) == list(range(1, 17))


def test_flip_is_an_involution_and_swaps_sides():
    js = sk.H36M18
    x = torch.randn(4, 18, 3)
    np.testing.assert_array_equal(js.flip(js.flip(x)).numpy(), x.numpy())
    y = js.flip(x)
    assert torch.equal(y[:, js.index("LWrist")], x[:, js.index("RWrist")])
    assert torch.equal(y[:, js.index("pelvis")], x[:, js.index("pelvis")])
    for a, b in js.flip_pairs:
        assert js.joints[a][1:] == js.joints[b][1:] and {js.joints[a][0], js.joints[b][0]} == {"L", "R"}


def test_segments_are_linear_combinations():
    js = sk.H36M18
    wa, wb = js.segment_matrices()
    assert wa.shape == (30, 18)
    J = torch.randn(2, 18, 3, dtype=torch.float64)
    a, b = sk.segment_endpoints(J, wa, wb)
    names = [s.name for s in js.body_segments]
    h = names.index("L-hand")
    lw, le = J[:, js.index("LWrist")], J[:, js.index("LElbow")]
    torch.testing.assert_close(a[:, h], lw)
    torch.testing.assert_close(b[:, h], lw + 0.3 * (lw - le))
    head = names.index("head-sphere")
    torch.testing.assert_close(a[:, head], b[:, head])
    chest = names.index("chest")
    sp, th = J[:, js.index("spine")], J[:, js.index("thorax")]
    torch.testing.assert_close(b[:, chest], sp + 0.4 * (th - sp))


def test_template_lengths_are_anthropometric():
    L = sk.template_bone_lengths(sk.H36M18, stature_mm=1750)
    names = [b.name for b in sk.H36M18.bones]
    assert L[names.index("L-thigh")] == pytest.approx(0.245 * 1750)
    # forearm between joint centres (de Leva 1996, sex-averaged fraction of stature)
    assert L[names.index("R-forearm")] == pytest.approx(0.5 * (268.9 / 1741 + 264.3 / 1735) * 1750)
    assert (L > 50).all()


def test_unknown_names_and_bad_shapes_raise():
    with pytest.raises(KeyError, match="unknown joint name 'LToe'"):
        sk.H36M18.index("LToe")
    with pytest.raises(KeyError, match="unknown bone group"):
        sk.H36M18.select_bones(["wing"])
    with pytest.raises(KeyError, match="unknown joint set"):
        sk.get_joint_set("coco")
    with pytest.raises(ValueError, match=r"\[..., 18, 2 or 3\]"):
        sk.H36M18.check_joints(torch.zeros(2, 17, 3))
    with pytest.raises(ValueError, match="indexes outside"):
        sk.JointSet("bad", ("a", "b"), (sk.Bone("x", 1, 2, "leg"),), ())
