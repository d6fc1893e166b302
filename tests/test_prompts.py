"""Prompt initializers: shapes, documented distributions, label rows, files, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprompt.prompts.init import PromptConfig, PromptError, init_prompt

EMBEDDING = jax.random.normal(jax.random.key(0), (6000, 16))


@pytest.mark.parametrize("length", [1, 5, 20, 100, 150])
def test_uniform_shape_and_range(length):
    prompt = init_prompt(jax.random.key(1), EMBEDDING, PromptConfig(length=length, init="uniform"))
    assert prompt.shape == (length, 16) and prompt.dtype == jnp.float32
    assert float(prompt.min()) >= -0.5 and float(prompt.max()) <= 0.5
    if length >= 100:  # U[-0.5, 0.5]: mean 0, variance 1/12.
        assert abs(float(prompt.mean())) < 0.02
        assert abs(float(prompt.var()) - 1 / 12) < 0.01


def test_sampled_vocab_rows_come_from_the_most_frequent_tokens():
    prompt = np.asarray(
        init_prompt(jax.random.key(2), EMBEDDING, PromptConfig(length=150, init="sampled_vocab"))
    )
    table = np.asarray(EMBEDDING)
    for row in prompt:
        matches = np.flatnonzero((table == row).all(axis=1))
        assert len(matches) == 1 and 3 <= matches[0] < 5003
    assert len({tuple(r) for r in prompt}) == 150  # without replacement


def test_class_label_rows_are_label_embeddings():
    labels = ((4,), (7, 9, 1))  # the second label is multi-token, EOS appended
    prompt = np.asarray(
        init_prompt(
            jax.random.key(3),
            EMBEDDING,
            PromptConfig(length=20, init="class_labels", label_token_ids=labels),
        )
    )
    table = np.asarray(EMBEDDING)
    np.testing.assert_allclose(prompt[0], table[4], rtol=1e-6)
    np.testing.assert_allclose(prompt[1], (table[7] + table[9]) / 2, rtol=1e-6)
    for row in prompt[2:]:
        assert (table[3:5003] == row).all(axis=1).any()


def test_text_init_truncates_and_completes():
    ids = tuple(range(10, 40))
    long = np.asarray(
        init_prompt(
            jax.random.key(4), EMBEDDING, PromptConfig(length=5, init="text", text_token_ids=ids)
        )
    )
    np.testing.assert_array_equal(long, np.asarray(EMBEDDING)[10:15])
    short = np.asarray(
        init_prompt(
            jax.random.key(4), EMBEDDING, PromptConfig(length=40, init="text", text_token_ids=ids)
        )
    )
    np.testing.assert_array_equal(short[:30], np.asarray(EMBEDDING)[10:40])


def test_from_file_checks_the_shape(tmp_path):
    saved = np.random.default_rng(0).normal(size=(5, 16)).astype(np.float32)
    np.save(tmp_path / "p.npy", saved)
    prompt = init_prompt(
        None, EMBEDDING, PromptConfig(length=5, init="from_file", file=str(tmp_path / "p.npy"))
    )
    np.testing.assert_array_equal(prompt, saved)
    with pytest.raises(
        PromptError,
        match=r"p.npy: prompt has shape \(5, 16\) but this run "
        r"expects \(7, 16\)",
    ):
        init_prompt(
            None, EMBEDDING, PromptConfig(length=7, init="from_file", file=str(tmp_path / "p.npy"))
        )
    with pytest.raises(PromptError, match=r"expects \(5, 32\)"):
        init_prompt(
            None,
            jnp.zeros((100, 32)),
            PromptConfig(length=5, init="from_file", file=str(tmp_path / "p.npy")),
        )


def test_bad_prompt_configs():
    with pytest.raises(PromptError, match="positive integer, got 0"):
        PromptConfig(length=0, init="uniform")
    with pytest.raises(PromptError, match="leaves no room for inputs.*budget is 64"):
        init_prompt(
            jax.random.key(0), EMBEDDING, PromptConfig(length=64, init="uniform"), max_length=64
        )
    with pytest.raises(PromptError, match="needs label_token_ids"):
        PromptConfig(init="class_labels")
    with pytest.raises(PromptError, match="Unknown prompt init 'zeros'"):
        PromptConfig(init="zeros")
    with pytest.raises(PromptError, match=r"in \[0, 6000\)"):
        init_prompt(
            jax.random.key(0),
            EMBEDDING,
            PromptConfig(length=3, init="class_labels", label_token_ids=((7000,),)),
        )
