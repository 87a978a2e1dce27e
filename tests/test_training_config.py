"""Training configs: defaults, YAML round trip, and precise errors for bad settings."""

from __future__ import annotations

import pytest
import yaml

from selfsteer.training import ConfigError, config_from_dict, load_config
from selfsteer.training.config import TrainConfig
from selfsteer.training.objectives import OBJECTIVES


def test_defaults_and_round_trip(tmp_path):
    config = config_from_dict({})
    assert config.objective.name == "grpo"
    assert config.sampling.group_size == 8
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    assert load_config(path) == config


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_every_objective_loads_with_its_defaults(name):
    config = config_from_dict({"objective": {"name": name}})
    assert config.objective.name == name
    assert isinstance(config.objective.params, OBJECTIVES[name].params)
    assert config_from_dict(config.to_dict()) == config


def test_objective_parameters_are_typed_and_checked():
    config = config_from_dict({"objective": {"name": "lens", "alpha": 0.5}})
    assert config.objective.params.alpha == 0.5
    with pytest.raises(ConfigError, match=r"alhpa is not a setting.*did you mean 'alpha'"):
        config_from_dict({"objective": {"name": "lens", "alhpa": 0.5}})
    with pytest.raises(ConfigError, match=r"objective \(lens\)\.alpha: expected a number, got 'big'"):
        config_from_dict({"objective": {"name": "lens", "alpha": "big"}})
    with pytest.raises(ConfigError, match="objective.alpha must be >= 0"):
        config_from_dict({"objective": {"name": "lens", "alpha": -1}})


@pytest.mark.parametrize(
    "data, message",
    [
        ({"optim": {"lr": "1e-5"}}, r"optim\.lr: expected a number, got '1e-5' \(YAML reads 1e-5 as text: write 1\.0e-5\)"),
        ({"optim": {"lr": 0}}, r"optim\.lr must be > 0"),
        ({"optim": {"stpes": 3}}, r"optim\.stpes is not a setting of optim; did you mean 'steps'"),
        ({"sampling": {"group_size": 1}}, r"sampling\.group_size must be >= 2"),
        ({"sampling": {"group_size": 2.5}}, r"sampling\.group_size: expected an integer, got 2\.5"),
        ({"sampling": {"prompt": "plain"}}, r"sampling\.prompt: expected one of \['chat', 'qa'\], got 'plain'"),
        ({"optim": {"grad_accum": 100}}, r"optim\.grad_accum must lie in \[1, questions_per_step \* group_size = 32\]"),
        ({"loss": {"agg": "mean"}}, r"loss\.agg: expected one of \['token', 'sequence', 'constant'\], got 'mean'"),
        ({"objective": {"name": "ppo"}}, r"unknown objective 'ppo'; choose one of \['asymre'"),
        ({"objective": {"name": "thinkprune", "schedule": [32, 48]}}, r"strictly decreasing"),
        ({"objective": {"name": "thinkprune", "schedule": [128, 64]}}, r"above sampling\.max_tokens = 64"),
        ({"task": {"name": "jsonl"}}, r"task\.path is not set"),
        ({"model": {"lora": {"r": 0}}}, r"model\.lora\.r and model\.lora\.alpha must be >= 1"),
        ({"model": {"lora": {"layers": "top"}}}, r"model\.lora\.layers: expected a list"),
        ({"optim": {"betas": [0.9]}}, r"optim\.betas: expected a list of 2 values, got 1"),
        ({"log": ["every"]}, r"log: expected a mapping of settings"),
        ({"unknown": 1}, r"unknown is not a setting"),
    ],
)
def test_bad_settings_get_precise_errors(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


def test_overrides_and_file_errors(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("objective: {name: asymre}\noptim: {steps: 5}\n")
    config = load_config(path, ["optim.lr=2.0e-5", "objective.delta=-0.2", "sampling.prompt=qa"])
    assert (config.optim.lr, config.objective.params.delta, config.sampling.prompt, config.optim.steps) == (2e-5, -0.2, "qa", 5)
    with pytest.raises(ConfigError, match="must look like section.key=value"):
        load_config(path, ["optim.lr"])
    with pytest.raises(ConfigError, match="no config file at"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("optim: [1,\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(tmp_path / "bad.yaml")


def test_config_is_frozen():
    config = TrainConfig()
    with pytest.raises(AttributeError):
        config.seed = 3  # type: ignore[misc]


def test_example_configs_are_valid():
    from pathlib import Path

    configs = sorted((Path(__file__).parent.parent / "tutorials" / "03_training" / "configs").glob("*.yaml"))
    assert {p.stem for p in configs} >= {"grpo", "rlcr", "lens", "exploration", "thinkprune", "asymre", "meta_prompt", "pilaf"}
    for path in configs:
        config = load_config(path)
        assert config.objective.name == path.stem
