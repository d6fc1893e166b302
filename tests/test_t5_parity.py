"""jaxprompt.T5 against transformers' PyTorch T5 on tiny random models (same weights)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from tests.torch_reference import TINY_T5_1_0, TINY_T5_1_1, build_torch_t5, random_ids, torch

import jaxprompt

TOLERANCE = 1e-4
ARCHS = {"t5_1_0": TINY_T5_1_0, "t5_1_1": TINY_T5_1_1, "mt5": TINY_T5_1_1, "umt5": TINY_T5_1_1}


@pytest.fixture(scope="module", params=list(ARCHS))
def pair(request, tmp_path_factory):
    """(torch model, jaxprompt config, params) sharing the same weights via save_pretrained."""
    model = build_torch_t5(
        ARCHS[request.param], seed=1, family=request.param if "mt5" in request.param else "t5"
    )
    directory = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(directory)
    if "mt5" in request.param:  # what (U)MT5ForConditionalGeneration writes, loaded as such
        assert f'"model_type": "{request.param}"' in (directory / "config.json").read_text()
    config, params = jaxprompt.load_pretrained(directory)
    if request.param == "umt5":  # every layer's own table, each one different
        tables = [
            params["encoder"][f"layers_{i}"]["relpos_bias"]["rel_embedding"]
            for i in range(config.num_layers)
        ]
        assert config.relative_bias_per_layer and not np.allclose(tables[0], tables[1])
    return model, config, params


def _batch(vocab):
    rng = np.random.default_rng(0)
    # Encoder rows of different lengths (padding), long enough for logarithmic buckets.
    encoder_ids = random_ids(rng, 3, 22, vocab, lengths=[22, 15, 7])
    decoder_ids = random_ids(rng, 3, 19, vocab, lengths=[19, 11, 4])
    decoder_ids[:, 0] = 0  # decoder start id
    return encoder_ids, decoder_ids


def _torch_logits(model, encoder_ids, decoder_ids, inputs_embeds=None, attention_mask=None):
    with torch.no_grad():
        if inputs_embeds is None:
            ids = torch.tensor(encoder_ids)
            out = model(
                input_ids=ids,
                attention_mask=(ids > 0).long(),
                decoder_input_ids=torch.tensor(decoder_ids),
            )
        else:
            out = model(
                inputs_embeds=inputs_embeds,
                attention_mask=attention_mask,
                decoder_input_ids=torch.tensor(decoder_ids),
            )
    return out.logits.numpy()


def _valid_positions(logits, decoder_ids):
    """Keep rows of non-padding decoder positions (position 0 is the start token)."""
    valid = decoder_ids > 0
    valid[:, 0] = True
    return logits[valid]


def test_logits_match_transformers(pair):
    model, config, params = pair
    encoder_ids, decoder_ids = _batch(config.vocab_size)
    ours = np.asarray(
        jaxprompt.T5(config).apply(
            {"params": params}, jnp.asarray(encoder_ids), jnp.asarray(decoder_ids)
        )
    )
    theirs = _torch_logits(model, encoder_ids, decoder_ids)
    assert ours.shape == theirs.shape == (3, 19, config.vocab_size)
    assert ours.dtype == np.float32
    diff = np.abs(_valid_positions(ours, decoder_ids) - _valid_positions(theirs, decoder_ids))
    print(f"max abs logits diff vs transformers: {diff.max():.3e}")
    assert diff.max() < TOLERANCE


@pytest.mark.parametrize("per_example", [False, True])
@pytest.mark.parametrize("mode", ["prefix", "prefix_after_bos"])
def test_prompt_matches_transformers_inputs_embeds(pair, per_example, mode):
    model, config, params = pair
    encoder_ids, decoder_ids = _batch(config.vocab_size)
    rng = np.random.default_rng(1)
    prompt_length = 5
    shape = (3, prompt_length, config.d_model) if per_example else (prompt_length, config.d_model)
    prompt = rng.normal(size=shape).astype(np.float32)

    ours = np.asarray(
        jaxprompt.T5(config).apply(
            {"params": params},
            jnp.asarray(encoder_ids),
            jnp.asarray(decoder_ids),
            prompt=jnp.asarray(prompt),
            prompt_mode=mode,
        )
    )

    ids = torch.tensor(encoder_ids)
    embeds = model.get_input_embeddings()(ids)
    prompt_t = torch.tensor(prompt if per_example else np.broadcast_to(prompt, (3,) + prompt.shape))
    mask = (ids > 0).long()
    ones = torch.ones(3, prompt_length, dtype=torch.long)
    if mode == "prefix":
        inputs_embeds = torch.cat([prompt_t, embeds], dim=1)
        attention_mask = torch.cat([ones, mask], dim=1)
    else:
        inputs_embeds = torch.cat([embeds[:, :1], prompt_t, embeds[:, 1:]], dim=1)
        attention_mask = torch.cat([mask[:, :1], ones, mask[:, 1:]], dim=1)
    theirs = _torch_logits(model, None, decoder_ids, inputs_embeds, attention_mask)

    diff = np.abs(_valid_positions(ours, decoder_ids) - _valid_positions(theirs, decoder_ids))
    print(f"max abs logits diff with prompt ({mode}, per_example={per_example}): {diff.max():.3e}")
    assert diff.max() < TOLERANCE
    # The prompt must matter: the same ids without a prompt give different logits.
    plain = np.asarray(
        jaxprompt.T5(config).apply(
            {"params": params}, jnp.asarray(encoder_ids), jnp.asarray(decoder_ids)
        )
    )
    assert np.abs(plain - ours).max() > 1e-3


def test_relative_position_buckets_match_transformers():
    from transformers.models.t5.modeling_t5 import T5Attention

    from jaxprompt.models.layers import relative_position_buckets

    for bidirectional in (True, False):
        for buckets, max_distance in ((32, 128), (8, 12), (10, 16)):
            length = 300
            ours = relative_position_buckets(length, length, bidirectional, buckets, max_distance)
            relative = torch.arange(length)[None, :] - torch.arange(length)[:, None]
            theirs = T5Attention._relative_position_bucket(
                relative, bidirectional, buckets, max_distance
            ).numpy()
            np.testing.assert_array_equal(ours, theirs)
