"""Reading and writing Hugging Face T5 directories: every layout, dtypes, and bad input."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from tests.torch_reference import TINY_T5_1_0, TINY_T5_1_1, build_torch_t5, random_ids, torch
from tests.helpers import PickleExploit

import jaxprompt
from jaxprompt.checkpoints import CheckpointError
from jaxprompt.config import T5Config
from jaxprompt.models.t5 import init_params


def _flat(params):
    return {
        "/".join(k.key for k in path): np.asarray(v)
        for path, v in jax.tree_util.tree_flatten_with_path(params)[0]
    }


def _assert_same_params(a, b):
    fa, fb = _flat(a), _flat(b)
    assert fa.keys() == fb.keys()
    for key in fa:
        np.testing.assert_array_equal(fa[key], fb[key], err_msg=key)


def _logits(config, params, seed=0):
    rng = np.random.default_rng(seed)
    encoder_ids = random_ids(rng, 2, 9, config.vocab_size, lengths=[9, 5])
    decoder_ids = random_ids(rng, 2, 4, config.vocab_size)
    decoder_ids[:, 0] = 0
    ours = jaxprompt.T5(config).apply(
        {"params": params}, jnp.asarray(encoder_ids), jnp.asarray(decoder_ids)
    )
    return encoder_ids, decoder_ids, np.asarray(ours)


def _torch_logits(model, encoder_ids, decoder_ids):
    ids = torch.tensor(encoder_ids)
    with torch.no_grad():
        return (
            model(
                input_ids=ids,
                attention_mask=(ids > 0).long(),
                decoder_input_ids=torch.tensor(decoder_ids),
            )
            .logits.float()
            .numpy()
        )


@pytest.mark.slow
def test_pytorch_bin_and_sharded_safetensors_load_the_same_params(tmp_path):
    model = build_torch_t5(TINY_T5_1_1, seed=3)
    model.save_pretrained(tmp_path / "single")
    model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    os.makedirs(tmp_path / "bin")
    os.replace(tmp_path / "pytorch_model.bin", tmp_path / "bin" / "pytorch_model.bin")
    (tmp_path / "bin" / "config.json").write_text((tmp_path / "single" / "config.json").read_text())
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()

    config, params = jaxprompt.load_pretrained(tmp_path / "single")
    for layout in ("sharded", "bin"):
        other_config, other = jaxprompt.load_pretrained(tmp_path / layout)
        assert other_config == config
        _assert_same_params(other, params)
    # And they are transformers' weights: equal logits.
    encoder_ids, decoder_ids, ours = _logits(config, params)
    np.testing.assert_allclose(ours, _torch_logits(model, encoder_ids, decoder_ids), atol=1e-4)


def test_transformers5_tied_t5_1_1_uses_embedding_as_output_layer(tmp_path):
    """transformers >= 5 builds T5.1.1 with lm_head tied and saves it once, unscaled."""
    model = build_torch_t5(TINY_T5_1_1, seed=4, untie=False)
    model.save_pretrained(tmp_path)
    config, params = jaxprompt.load_pretrained(tmp_path)
    assert config.tie_word_embeddings is False
    np.testing.assert_array_equal(
        params["decoder"]["logits_dense"]["kernel"],
        np.asarray(params["token_embedder"]["embedding"]).T,
    )
    encoder_ids, decoder_ids, ours = _logits(config, params)
    np.testing.assert_allclose(ours, _torch_logits(model, encoder_ids, decoder_ids), atol=1e-4)


def test_bfloat16_checkpoint_keeps_its_dtype_and_bits(tmp_path):
    model = build_torch_t5(TINY_T5_1_0, seed=5).to(torch.bfloat16)
    model.save_pretrained(tmp_path)
    config, params = jaxprompt.load_pretrained(tmp_path)
    embedding = params["token_embedder"]["embedding"]
    assert embedding.dtype == jnp.bfloat16
    expected = model.shared.weight.detach().view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(np.asarray(embedding), expected)
    query = model.encoder.block[1].layer[0].SelfAttention.q.weight.detach()
    np.testing.assert_array_equal(
        np.asarray(params["encoder"]["layers_1"]["attention"]["query"]["kernel"]),
        query.view(torch.int16).numpy().view(ml_dtypes.bfloat16).T,
    )
    # Casting on load.
    _, params32 = jaxprompt.load_pretrained(tmp_path, dtype=np.float32)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params32))


@pytest.mark.parametrize("arch", ["t5_1_0", "t5_1_1"])
def test_save_hf_checkpoint_is_read_by_transformers(tmp_path, arch):
    import transformers

    config = T5Config(**{**(TINY_T5_1_0 if arch == "t5_1_0" else TINY_T5_1_1), "dropout_rate": 0.0})
    params = init_params(config, jax.random.key(7))
    jaxprompt.save_hf_checkpoint(tmp_path, config, params)
    model = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path).eval()
    encoder_ids, decoder_ids, ours = _logits(config, params)
    np.testing.assert_allclose(ours, _torch_logits(model, encoder_ids, decoder_ids), atol=1e-4)
    loaded_config, loaded = jaxprompt.load_pretrained(tmp_path)
    assert loaded_config == config
    _assert_same_params(loaded, params)


@pytest.fixture()
def saved(tmp_path):
    config = T5Config(**{**TINY_T5_1_1, "dropout_rate": 0.0})
    jaxprompt.save_hf_checkpoint(tmp_path, config, init_params(config, jax.random.key(0)))
    return tmp_path


def test_config_weight_mismatch_lists_every_problem(saved):
    hf = json.loads((saved / "config.json").read_text())
    (saved / "config.json").write_text(json.dumps(dict(hf, d_ff=32, num_layers=4)))
    with pytest.raises(CheckpointError) as info:
        jaxprompt.load_pretrained(saved)
    message = str(info.value)
    assert "model.safetensors does not match" in message and "config.json" in message
    assert (
        "'encoder.block.0.layer.1.DenseReluDense.wi_0.weight' has shape (20, 16) but "
        "config.json implies (32, 16)" in message
    )
    assert "missing tensor 'encoder.block.3.layer.0.SelfAttention.q.weight'" in message


def test_truncated_safetensors_is_named(saved):
    path = saved / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match="model.safetensors: tensor .* truncated or corrupt"):
        jaxprompt.load_pretrained(saved)
    path.write_bytes(b"\x00" * 4)
    with pytest.raises(CheckpointError, match="truncated safetensors file"):
        jaxprompt.load_pretrained(saved)


def test_missing_files_and_wrong_model_type(tmp_path, saved):
    with pytest.raises(CheckpointError, match="no such file or directory"):
        jaxprompt.load_pretrained(tmp_path / "nope")
    os.makedirs(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="not a checkpoint jaxprompt can read"):
        jaxprompt.load_pretrained(tmp_path / "empty")
    os.remove(saved / "model.safetensors")
    with pytest.raises(CheckpointError, match="no weights found. Expected model.safetensors"):
        jaxprompt.load_pretrained(saved)
    (saved / "config.json").write_text(json.dumps({"model_type": "bart"}))
    with pytest.raises(
        CheckpointError,
        match="model_type is 'bart', not one jaxprompt loads: t5, mt5, umt5 .* decoder-only gemma3",
    ):
        jaxprompt.load_pretrained(saved)


def test_unsafe_pickle_is_refused(tmp_path, saved):
    import pickle

    os.remove(saved / "model.safetensors")

    marker = saved / "pwned"
    with open(saved / "pytorch_model.bin", "wb") as f:
        pickle.dump({"shared.weight": PickleExploit(str(marker))}, f)
    with pytest.raises(
        CheckpointError,
        match=r"pytorch_model.bin: torch.load\(weights_only=True\) "
        "refused the file",
    ) as refused:
        jaxprompt.load_pretrained(saved)
    assert not marker.exists()
    # torch's own advice (retry with weights_only=False) is not passed on.
    assert "weights_only=False" not in str(refused.value), refused.value
    assert "\n" not in str(refused.value), refused.value
