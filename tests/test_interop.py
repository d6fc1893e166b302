"""Interop: PEFT round trip, every export format, released prompts, real T5X checkpoints."""

from __future__ import annotations

import json
import pickle

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from tests.conftest import shared_path
from tests.torch_reference import TINY_T5_1_1, build_torch_t5, random_ids, torch
from tests.helpers import PickleExploit, tiny_config

import jaxprompt
from jaxprompt.checkpoints import CheckpointError
from jaxprompt.config import T5Config
from jaxprompt.prompts.export import FORMATS, export_prompt
from jaxprompt.prompts.files import PromptFileError, load_prompt
from jaxprompt.prompts.init import PromptConfig, PromptError, init_prompt

peft = pytest.importorskip("peft", reason="peft is not installed (pip install 'jaxprompt[torch]')")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    model = build_torch_t5(TINY_T5_1_1, seed=21)
    directory = tmp_path_factory.mktemp("hf")
    model.save_pretrained(directory)
    config, params = jaxprompt.load_pretrained(directory)
    return model, str(directory), config, params


@pytest.mark.slow
def test_peft_round_trip_logits_and_generate(tmp_path, pair):
    from transformers import T5ForConditionalGeneration

    _, model_dir, config, params = pair
    _peft_round_trip(tmp_path, T5ForConditionalGeneration, model_dir, config, params)


@pytest.mark.parametrize("family", ["mt5", "umt5"])
def test_peft_round_trip_on_mt5_and_umt5(tmp_path, family):
    """mT5 and UMT5 ((U)MT5ForConditionalGeneration): the same export loads in real PEFT on
    that class, with the same logits and generate."""
    import transformers

    model_class = {
        "mt5": transformers.MT5ForConditionalGeneration,
        "umt5": transformers.UMT5ForConditionalGeneration,
    }[family]
    model = build_torch_t5(TINY_T5_1_1, seed=22, family=family)
    model.save_pretrained(tmp_path / family)
    config, params = jaxprompt.load_pretrained(tmp_path / family)
    _peft_round_trip(tmp_path, model_class, str(tmp_path / family), config, params)


def _peft_round_trip(tmp_path, model_class, model_dir, config, params):
    from jaxprompt.evaluation import greedy_decode

    prompt = np.random.default_rng(0).normal(size=(7, config.d_model)).astype(np.float32)
    adapter = export_prompt(
        prompt, "peft", tmp_path / "adapter", config=config, base_model=model_dir
    )

    # The README's snippet:
    from peft import PeftModel

    base = model_class.from_pretrained(model_dir).eval()
    peft_model = PeftModel.from_pretrained(base, adapter).eval()

    rng = np.random.default_rng(1)
    encoder_ids = random_ids(rng, 3, 10, config.vocab_size, lengths=[10, 6, 3])
    decoder_ids = random_ids(rng, 3, 5, config.vocab_size)
    decoder_ids[:, 0] = 0
    ids = torch.tensor(encoder_ids)
    with torch.no_grad():
        theirs = peft_model(
            input_ids=ids,
            attention_mask=(ids > 0).long(),
            decoder_input_ids=torch.tensor(decoder_ids),
        ).logits.numpy()
    ours = np.asarray(
        jaxprompt.T5(config).apply(
            {"params": params},
            jnp.asarray(encoder_ids),
            jnp.asarray(decoder_ids),
            prompt=jnp.asarray(prompt),
        )
    )
    diff = np.abs(ours - theirs).max()
    print(f"PEFT round trip max abs logits diff: {diff:.2e}")
    assert diff < 1e-4
    without = np.asarray(
        jaxprompt.T5(config).apply(
            {"params": params}, jnp.asarray(encoder_ids), jnp.asarray(decoder_ids)
        )
    )
    assert np.abs(without - theirs).max() > 1e-3  # PEFT really used the prompt

    with torch.no_grad():
        generated = peft_model.generate(
            input_ids=ids,
            attention_mask=(ids > 0).long(),
            max_new_tokens=6,
            num_beams=1,
            do_sample=False,
            min_length=0,
        ).numpy()[:, 1:]
    generated = np.pad(generated, ((0, 0), (0, 6 - generated.shape[1])))
    ours_tokens = np.asarray(
        greedy_decode(config, params, jnp.asarray(prompt), jnp.asarray(encoder_ids), max_length=6)
    )
    np.testing.assert_array_equal(ours_tokens, generated)


def test_real_peft_adapter_with_two_submodules_loads_first_rows(tmp_path, pair):
    model, _, config, _ = pair
    peft_model = peft.get_peft_model(
        model, peft.PromptTuningConfig(task_type=peft.TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=4)
    )
    peft_model.save_pretrained(tmp_path)
    config_json = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config_json["num_transformer_submodules"] == 2
    table = peft_model.prompt_encoder["default"].embedding.weight.detach().numpy()
    assert table.shape == (8, config.d_model)
    np.testing.assert_array_equal(load_prompt(tmp_path), table[:4])


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_round_trips_bit_exact(tmp_path, fmt):
    prompt = np.random.default_rng(2).normal(size=(5, 12)).astype(np.float32)
    out = tmp_path / {"npy": "p.npy", "safetensors": "p.safetensors", "torch": "p.pt"}.get(fmt, "p")
    path = export_prompt(prompt, fmt, out)
    back = load_prompt(path, d_model=12)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, prompt)


def test_torch_export_is_plain_weights_only(tmp_path):
    path = export_prompt(np.ones((3, 4), np.float32), "torch", tmp_path / "p.pt")
    loaded = torch.load(path, weights_only=True)
    assert loaded["prompt_embeddings"].shape == (3, 4)
    assert loaded["metadata"]["prompt_length"] == "3"


@pytest.mark.parametrize("task", ["sst2", "mrpc", "rte"])
def test_released_prompts_load(task):
    path = shared_path("fixtures", "released_prompts", "t5_1_1_lm100k_base", f"{task}.npy")
    prompt = load_prompt(path, d_model=T5Config.preset("t5_1_1_lm100k_base").d_model)
    assert prompt.shape == (100, 768) and np.isfinite(prompt).all()
    np.testing.assert_array_equal(prompt, np.load(path))
    embedding = jnp.zeros((10, 768))
    init = init_prompt(None, embedding, PromptConfig(length=100, init="from_file", file=str(path)))
    np.testing.assert_array_equal(np.asarray(init), np.load(path))
    with pytest.raises(
        PromptFileError, match="prompt width 768 does not match the model's d_model 512"
    ):
        load_prompt(path, d_model=512)
    with pytest.raises(PromptError, match=r"shape \(100, 768\) but this run expects \(100, 512\)"):
        init_prompt(
            None, jnp.zeros((10, 512)), PromptConfig(length=100, init="from_file", file=str(path))
        )


def test_google_float64_prompt_file():
    path = shared_path("fixtures", "prompt_tuning_test_data", "prompt_5x256.npy")
    prompt = load_prompt(path)
    assert prompt.shape == (5, 256) and prompt.dtype == np.float32
    np.testing.assert_allclose(prompt, np.load(path), rtol=1e-7)


def _forward_ok(config, params):
    ids = jnp.asarray(random_ids(np.random.default_rng(0), 2, 7, 1000, lengths=[7, 4]))
    logits = jaxprompt.T5(config).apply({"params": params}, ids, jnp.zeros((2, 3), jnp.int32))
    assert logits.shape == (2, 3, config.vocab_size) and bool(jnp.isfinite(logits).all())


def test_prompt_tuning_tiny_t5x_checkpoint():
    path = shared_path(
        "fixtures", "t5x_checkpoint", "prompt_tuning_test_t5_1_1_tiny", "checkpoint_3"
    )
    gold = np.load(
        shared_path("fixtures", "prompt_tuning_test_data", "tiny_embeddings_32128x4.npy")
    )
    config = tiny_config(
        d_model=4,
        d_kv=2,
        d_ff=8,
        num_decoder_layers=None,
        relative_attention_num_buckets=4,
        relative_attention_max_distance=8,
    )
    loaded_config, params = jaxprompt.load_pretrained(path, config=config)
    assert loaded_config == config
    np.testing.assert_array_equal(np.asarray(params["token_embedder"]["embedding"]), gold)
    assert float(params["encoder"]["encoder_norm"]["scale"].mean()) != 1.0  # inline leaf read
    _forward_ok(config, params)
    inferred, _ = jaxprompt.load_pretrained(path)  # no config: shapes decide
    assert inferred.replace(relative_attention_max_distance=8) == config
    with pytest.raises(CheckpointError, match="num_heads config 4 vs checkpoint 2"):
        jaxprompt.load_pretrained(path, config=config.replace(num_heads=4, d_kv=1))


def test_t5x_own_tiny_checkpoint_single_msgpack():
    path = shared_path(
        "fixtures", "t5x_checkpoint", "t5x_test_t5_tiny", "test_t5_tiny.checkpoint_0"
    )
    config, params = jaxprompt.load_pretrained(path)
    assert (config.d_model, config.num_heads, config.d_kv, config.d_ff) == (8, 4, 3, 16)
    assert config.is_gated and not config.tie_word_embeddings
    assert all(
        float(jnp.min(s["scale"])) == 1.0
        for s in [params["encoder"]["encoder_norm"], params["decoder"]["decoder_norm"]]
    )
    _forward_ok(config, params)


def _write_t5x_checkpoint(directory, params, dtype=ml_dtypes.bfloat16):
    """A T5X-layout checkpoint written the way t5x writes it: zarr arrays + msgpack specs."""
    import tensorstore as ts
    from flax import serialization, traverse_util

    flat = traverse_util.flatten_dict(params)
    target = {}
    for key, value in flat.items():
        array = np.asarray(value).astype(dtype)
        if key[-1] == "scale":  # t5x keeps unpartitioned leaves inline
            target[key] = array
            continue
        name = "target." + ".".join(key)
        spec = {
            "driver": "zarr",
            "kvstore": {"driver": "file", "path": str(directory / name)},
            "metadata": {
                "shape": list(array.shape),
                "chunks": list(array.shape),
                "dtype": "bfloat16",
                "compressor": {"id": "gzip", "level": 1},
            },
            "create": True,
            "delete_existing": True,
        }
        ts.open(spec).result().write(array).result()
        target[key] = {
            "driver": "zarr",
            "kvstore": {"driver": "gfile", "path": name},
            "metadata": spec["metadata"],
        }
    tree = {
        "version": 3,
        "optimizer": {
            "target": traverse_util.unflatten_dict(target),
            "state": {"step": np.int32(0)},
        },
    }
    (directory / "checkpoint").write_bytes(serialization.msgpack_serialize(tree))


def test_t5x_written_with_tensorstore_equals_hf_layout(tmp_path, pair):
    _, _, config, params = pair
    ckpt = tmp_path / "checkpoint_0"
    ckpt.mkdir()
    _write_t5x_checkpoint(ckpt, params)
    jaxprompt.save_hf_checkpoint(tmp_path / "hf", config, params, dtype=ml_dtypes.bfloat16)
    t5x_config, t5x_params = jaxprompt.load_pretrained(ckpt, config=config)
    hf_config, hf_params = jaxprompt.load_pretrained(tmp_path / "hf")
    assert t5x_params["encoder"]["layers_0"]["attention"]["query"]["kernel"].dtype == jnp.bfloat16
    ids = jnp.asarray(random_ids(np.random.default_rng(3), 2, 8, config.vocab_size))
    dec = jnp.zeros((2, 3), jnp.int32)
    a = jaxprompt.T5(config).apply({"params": t5x_params}, ids, dec)
    b = jaxprompt.T5(hf_config).apply({"params": hf_params}, ids, dec)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    # Reading with a sharding gives the same values (each device reads its slice).
    from jaxprompt import partitioning
    from jaxprompt.models.t5 import param_axes, param_shapes

    mesh = partitioning.make_mesh()
    shardings = partitioning.tree_shardings(param_shapes(config), param_axes(config), mesh)
    _, sharded = jaxprompt.load_pretrained(ckpt, config=config, shardings=shardings)
    jax.tree.map(
        lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)),
        sharded,
        t5x_params,
    )

    # A zarr array of the wrong shape is named.
    import tensorstore as ts

    name = "target.encoder.layers_0.mlp.wo.kernel"
    ts.open(
        {
            "driver": "zarr",
            "kvstore": {"driver": "file", "path": str(ckpt / name)},
            "metadata": {"shape": [3, 3], "chunks": [3, 3], "dtype": "<f4"},
            "create": True,
            "delete_existing": True,
        }
    ).result()
    with pytest.raises(
        CheckpointError,
        match=r"encoder/layers_0/mlp/wo/kernel has shape \(3, 3\) "
        r"but the config implies \(20, 16\)",
    ):
        jaxprompt.load_pretrained(ckpt, config=config)


def test_bad_prompt_files(tmp_path):
    truncated = tmp_path / "p.safetensors"
    export_prompt(np.ones((4, 8), np.float32), "safetensors", truncated)
    truncated.write_bytes(truncated.read_bytes()[:-10])
    with pytest.raises(
        CheckpointError, match="p.safetensors: tensor 'prompt_embeddings'.*truncated"
    ):
        load_prompt(truncated)
    lora = tmp_path / "lora"
    lora.mkdir()
    (lora / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    with pytest.raises(PromptFileError, match="a PEFT LORA adapter, not PROMPT_TUNING"):
        load_prompt(lora)

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"prompt": PickleExploit(str(marker))}))
    with pytest.raises(PromptFileError, match=r"evil.pt: torch.load\(weights_only=True\) refused"):
        load_prompt(evil)
    assert not marker.exists()
    not_t5x = tmp_path / "ckpt"
    not_t5x.mkdir()
    from flax import serialization

    (not_t5x / "checkpoint").write_bytes(serialization.msgpack_serialize({"params": {"w": 1}}))
    with pytest.raises(CheckpointError, match="not a T5X checkpoint: no optimizer/target"):
        jaxprompt.load_pretrained(not_t5x)
