import pytest

from maskpose.config import ConfigError, apply_overrides, from_dict, load_yaml, to_dict
from maskpose.demo import default_config_path
from maskpose.train import TrainConfig


def test_default_config_loads_and_round_trips():
    cfg = load_yaml(TrainConfig, default_config_path())
    assert cfg.loss.preset == "body" and cfg.model.input == "mask"
    again = from_dict(TrainConfig, to_dict(cfg))
    assert again == cfg


def test_overrides_are_typed():
    cfg = load_yaml(TrainConfig, default_config_path(), ["optim.lr=3e-4", "loss.prop=1", "method.matching=false"])
    assert cfg.optim.lr == pytest.approx(3e-4) and isinstance(cfg.loss.prop, float)
    assert cfg.method.matching is False
    cfg2 = apply_overrides(cfg, ["model.template_sigma=null"])
    assert cfg2.model.template_sigma is None


def test_unknown_key_names_the_key_and_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("optim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*optim.lrr"):
        load_yaml(TrainConfig, p)


def test_wrong_type_names_the_key(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("optim:\n  steps: many\n")
    with pytest.raises(ConfigError, match=r"optim.steps.*integer"):
        load_yaml(TrainConfig, p)
    p.write_text("loss:\n  preset: fancy\n")
    with pytest.raises(ConfigError, match=r"loss.preset.*one of"):
        load_yaml(TrainConfig, p)
    p.write_text("model:\n  input: depth\n")
    with pytest.raises(ConfigError, match=r"input"):
        load_yaml(TrainConfig, p)
    p.write_text("joint_set: coco\n")
    with pytest.raises(ConfigError, match=r"unknown joint set"):
        load_yaml(TrainConfig, p)


def test_bad_override_and_missing_file(tmp_path):
    cfg = TrainConfig()
    with pytest.raises(ConfigError, match="unknown key 'optim.nope'"):
        apply_overrides(cfg, ["optim.nope=1"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(cfg, ["optim.lr"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(TrainConfig, tmp_path / "missing.yaml")
    p = tmp_path / "broken.yaml"
    p.write_text("optim: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(TrainConfig, p)


@pytest.mark.parametrize("override, key", [
    ("loss.extremity_exclude_body_mm=-5", "extremity_exclude_body_mm"),
    ("loss.extremity_exclude_mm=-1", "extremity_exclude_mm"),
    ("loss.hand_extend_local=-0.5", "hand_extend_local"),
    ("loss.extremity_exclude_body_from=-1", "extremity_exclude_body_from"),
])
def test_extremity_options_are_validated(override, key):
    with pytest.raises((ConfigError, ValueError), match=key):
        load_yaml(TrainConfig, default_config_path(), [override])
