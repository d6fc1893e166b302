"""T5Config presets, transformers config.json import, gin preset files, bad input."""

from __future__ import annotations

import json
import pathlib

import gin
import pytest

from tests.conftest import REPO, shared_path

from jaxprompt.cli.configure import parse_gin
from jaxprompt.config import PRESETS, ConfigError, T5Config

HF_CONFIG_PRESETS = {
    "t5-small.json": "t5_1_0_small",
    "t5-v1_1-small.json": "t5_1_1_small",
    "t5-v1_1-base.json": "t5_1_1_base",
    "flan-t5-small.json": "t5_1_1_small",  # FLAN-T5 is T5.1.1-architecture.
}


@pytest.mark.parametrize("filename", sorted(HF_CONFIG_PRESETS))
def test_real_hf_config_equals_preset(filename):
    path = shared_path("fixtures", "hf_configs", filename)
    assert T5Config.from_hf_config(path) == T5Config.preset(HF_CONFIG_PRESETS[filename])
    assert T5Config.from_hf_config(json.loads(path.read_text())) == T5Config.from_hf_config(path)


def test_preset_sizes_match_published_parameter_counts():
    import jax
    import numpy as np

    from jaxprompt.models.t5 import param_shapes

    def count(name):
        return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(param_shapes(PRESETS[name])))

    # Published sizes: T5.1.1 small 77M, base 248M; T5 1.0 small 60M (tied embedding).
    assert count("t5_1_1_small") == 76_961_152
    assert count("t5_1_1_base") == 247_577_856
    assert count("t5_1_0_small") == 60_506_624
    # mT5 small 300M, base 582M (google/mt5-small, google/mt5-base).
    assert count("mt5_small") == 300_176_768
    assert count("mt5_base") == 582_401_280
    # ByT5 small 300M ... xxl 12.9B (google/byt5-*); UMT5 xxl 13B.
    assert round(count("byt5_small") / 1e6) == 300 and round(count("byt5_xl") / 1e7) == 374
    assert round(count("byt5_xxl") / 1e8) == 129 and round(count("umt5_xxl") / 1e9) == 13


def test_to_hf_config_round_trips():
    for name, config in PRESETS.items():
        assert T5Config.from_hf_config(config.to_hf_config()) == config, name


def test_transformers5_scale_decoder_outputs_decides_tying():
    base = PRESETS["t5_1_1_small"].to_hf_config()
    written_by_transformers5 = dict(base, tie_word_embeddings=True, scale_decoder_outputs=False)
    assert T5Config.from_hf_config(written_by_transformers5).tie_word_embeddings is False


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_gin_preset_file_equals_preset(name):
    path = REPO / "gin_configs" / "models" / f"{name}.gin"
    gin.clear_config()
    try:
        parse_gin([str(path)], [])
        assert gin.get_configurable("T5Config")() == PRESETS[name]
    finally:
        gin.clear_config()


def test_every_gin_model_file_is_a_preset():
    names = {p.stem for p in (REPO / "gin_configs" / "models").glob("*.gin")}
    assert names == set(PRESETS)


def test_bad_configs_name_the_problem(tmp_path: pathlib.Path):
    with pytest.raises(ConfigError, match="Unknown T5 preset 't5_huge'.*t5_1_1_base"):
        T5Config.preset("t5_huge")
    bert = tmp_path / "config.json"
    bert.write_text(json.dumps({"model_type": "bert", "hidden_size": 768}))
    with pytest.raises(ConfigError, match=f"{bert}.*model_type is 'bert'"):
        T5Config.from_hf_config(bert)
    with pytest.raises(ConfigError, match="missing keys \\['d_ff'"):
        T5Config.from_hf_config(
            {
                "model_type": "t5",
                "vocab_size": 8,
                "d_model": 4,
                "num_heads": 1,
                "d_kv": 4,
                "num_layers": 1,
            }
        )
    with pytest.raises(
        ConfigError, match="d_model=0 must be a positive integer; feed_forward_proj='swish'"
    ):
        T5Config(feed_forward_proj="swish", d_model=0)
