"""The decoder-only family against transformers' PyTorch classes: Gemma 3, Llama 3, Qwen 2.5
and Qwen 3 on tiny random configurations (float32, max abs logits difference <= 1e-4), with
and without a prompt in both placements, on sequences longer than Gemma's sliding window;
cached scoring and greedy decoding against the full forward and `generate`; GGUF files
written here read back as transformers reads them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from decoder_reference import jax_side, torch, torch_model, transformers, write_gguf
from jaxprompt.models import causal
from jaxprompt.models.decoder import DecoderLM
from jaxprompt.models.family import family_of
from jaxprompt.models.losses import sequence_log_likelihood

FAMILIES = ["gemma3", "llama", "qwen2", "qwen3"]
ATOL = 1e-4
# Two rows of different lengths (the pipeline's format: tokens, EOS 1, zeros); 9 + 4 + 4
# positions exceed Gemma's window of 5.
ROWS = [[5, 6, 7, 8, 9, 10, 11, 12], [13, 14, 15]]
TARGETS = [[20, 21, 1], [22, 1]]


def _batch(length=10, steps=4):
    inputs = np.zeros((len(ROWS), length), np.int32)
    targets = np.zeros((len(ROWS), steps), np.int32)
    for i, (row, target) in enumerate(zip(ROWS, TARGETS)):
        inputs[i, : len(row) + 1] = row + [1]
        targets[i, : len(target)] = target
    return jnp.asarray(inputs), jnp.asarray(targets)


@pytest.fixture(scope="module", params=FAMILIES)
def pair(request):
    model = torch_model(request.param)
    config, params = jax_side(model)
    return request.param, model, config, params


def test_logits_equal_transformers_with_left_padding(pair):
    _, model, config, params = pair
    ids = np.random.RandomState(0).randint(3, config.vocab_size, size=(2, 13))
    mask = np.ones_like(ids)
    mask[1, :4] = 0
    with torch.no_grad():
        ref = model(torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
    ours = np.asarray(DecoderLM(config).apply({"params": params}, ids, jnp.asarray(mask, bool)))
    np.testing.assert_allclose(ours[0], ref[0], atol=ATOL)
    np.testing.assert_allclose(ours[1, 4:], ref[1, 4:], atol=ATOL)


@pytest.mark.parametrize("mode", ["prefix", "prefix_after_bos"])
def test_prompted_target_logits_equal_transformers(pair, mode):
    """[prompt; BOS; input; target] (or [BOS; prompt; ...]) through inputs_embeds."""
    _, model, config, params = pair
    prompt = np.random.RandomState(1).randn(4, config.d_model).astype(np.float32)
    inputs, targets = _batch()
    ours = np.asarray(causal.target_logits(config, params, inputs, targets, prompt, None, mode))
    for i, (row, target) in enumerate(zip(ROWS, TARGETS)):
        with torch.no_grad():
            embeds = model.get_input_embeddings()(torch.tensor([[config.bos_id] + row + target]))
            p = torch.tensor(prompt)[None]
            if mode == "prefix":
                embeds = torch.cat([p, embeds], 1)
            else:
                embeds = torch.cat([embeds[:, :1], p, embeds[:, 1:]], 1)
            ref = model(inputs_embeds=embeds).logits[0].numpy()
        start = len(prompt) + len(row)  # the position before the first target
        np.testing.assert_allclose(
            ours[i, : len(target)], ref[start : start + len(target)], atol=ATOL
        )


@pytest.mark.parametrize("mode", ["prefix", "prefix_after_bos"])
def test_cached_scores_equal_the_full_forward_shared_or_per_row(pair, mode):
    """score() runs the prefix once into a cache; a bank's per-row, left-padded prompts take
    the unshared path: both equal the log-likelihood of target_logits."""
    _, _, config, params = pair
    prompt = jnp.asarray(np.random.RandomState(2).randn(4, config.d_model), jnp.float32)
    inputs, _ = _batch()
    candidates = jnp.asarray([[20, 21, 1, 0], [22, 1, 0, 0], [30, 1, 0, 0]], jnp.int32)
    expected = []
    for c in candidates:
        rows = jnp.broadcast_to(c, (2, 4))
        logits = causal.target_logits(config, params, inputs, rows, prompt, None, mode)
        expected.append(sequence_log_likelihood(logits, rows, rows > 0))
    expected = np.stack(expected, 1)
    each = jnp.broadcast_to(candidates, (2,) + candidates.shape)
    shared = causal.score(config, params, inputs, each, prompt, None, mode)
    np.testing.assert_allclose(np.asarray(shared), expected, atol=ATOL)
    padded = jnp.concatenate([jnp.zeros((2, 2, config.d_model)), jnp.stack([prompt] * 2)], 1)
    mask = jnp.asarray([[False, False] + [True] * 4] * 2)
    per_row = causal.score(config, params, inputs, each, padded, mask, mode)
    np.testing.assert_allclose(np.asarray(per_row), expected, atol=ATOL)


def test_greedy_with_cache_equals_generate(pair):
    _, model, config, params = pair
    inputs, _ = _batch()
    ours = np.asarray(causal.greedy(config, params, inputs, 6))
    for i, row in enumerate(ROWS):
        with torch.no_grad():
            out = model.generate(
                torch.tensor([[config.bos_id] + row]),
                max_new_tokens=6,
                do_sample=False,
                eos_token_id=config.eos_id,
                pad_token_id=0,
            )[0, len(row) + 1 :].numpy()
        n = len(out)
        assert ours[i, :n].tolist() == out.tolist()


@pytest.mark.slow
def test_scanned_layers_compute_the_same(pair):
    _, _, config, params = pair
    scanned = config.replace(scan_layers=True, remat_policy="full")
    stacked = family_of(scanned).model_layout(params, scanned)
    assert "layers" in stacked["decoder"] and "layers_0" not in stacked["decoder"]
    inputs, targets = _batch()
    prompt = jnp.ones((3, config.d_model)) * 0.1
    a = causal.target_logits(config, params, inputs, targets, prompt)
    b = causal.target_logits(scanned, stacked, inputs, targets, prompt)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    back = family_of(scanned).checkpoint_layout(stacked, scanned)
    assert jax.tree.structure(back) == jax.tree.structure(params)


def test_deep_prompts_are_refused_for_decoder_only():
    model = torch_model("llama")
    config, params = jax_side(model)
    inputs, targets = _batch()
    with pytest.raises(ValueError, match="Deep prompts are implemented for T5 only"):
        causal.target_logits(config, params, inputs, targets, deep_prompt={"x": jnp.zeros(1)})


@pytest.mark.parametrize("family", ["gemma3_gguf", "llama", "qwen2", "llama3_ids"])
def test_gguf_file_reads_as_transformers_reads_it(tmp_path, family):
    """A GGUF file as llama.cpp writes it (Gemma's 1 + w norms, Llama's permuted q/k rows,
    Q8_0 matrices for Gemma): jaxprompt's reader and transformers' `gguf_file=` give the
    same logits. (transformers' GGUF reader ignores Qwen 3's head width, so Qwen 3 is
    checked through its safetensors names only.) With Llama 3's ids (EOS 95, no padding),
    the tokenizer built from the file and the model's rows are reordered alike, and the
    logits mapped back to the file's ids are transformers'."""
    from jaxprompt.checkpoints import load_pretrained, read_model_shapes
    from jaxprompt.data import vocabulary
    from jaxprompt.token_order import rows_back, to_here

    write_gguf(torch_model(family), str(tmp_path / "m.gguf"), quantize=family.startswith("gemma"))
    reference = transformers.AutoModelForCausalLM.from_pretrained(
        str(tmp_path), gguf_file="m.gguf", dtype=torch.float32
    ).eval()
    config, params = load_pretrained(str(tmp_path))  # a directory holding one GGUF file
    assert read_model_shapes(str(tmp_path / "m.gguf"))[0] == config
    ids = np.random.RandomState(0).randint(0, config.vocab_size, size=(1, 12))
    with torch.no_grad():
        ref = reference(torch.tensor(ids)).logits.numpy()
    here = jnp.asarray([to_here(ids[0].tolist(), config.token_moves)])
    ours = np.asarray(DecoderLM(config).apply({"params": params}, here))
    np.testing.assert_allclose(rows_back(ours, config.token_moves, axis=-1), ref, atol=ATOL)
    assert vocabulary(str(tmp_path / "m.gguf")).token_moves == config.token_moves
    if family == "llama3_ids":
        assert config.token_moves == ((0, 96), (1, 95), (95, 1), (96, 0))
