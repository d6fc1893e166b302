"""Beyond the paper: ensembles, mixed-task batches, interpretation, hard prompts/few-shot."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("jaxprompt.data", reason="seqio/tensorflow not installed")
from jaxprompt import data, evaluation  # noqa: E402
from tests.helpers import TINY  # noqa: E402
from jaxprompt.prompts.hard import build_input, sample_demonstrations, with_hard_prompt  # noqa
from jaxprompt.prompts.interpretation import nearest_tokens, position_similarity  # noqa: E402
from jaxprompt.models.t5 import init_params  # noqa: E402
from jaxprompt.evaluation.bank import make_bank, predict_mixed  # noqa: E402

CONFIG = TINY


@pytest.fixture(scope="module")
def params():
    return init_params(CONFIG, jax.random.key(3))


def test_vote_and_mean_against_hand_computed():
    # 3 prompts, 2 examples, 3 classes.
    scores = np.array(
        [
            [[-1.0, -2.0, -3.0], [-5.0, -1.0, -2.0]],
            [[-2.0, -1.0, -3.0], [-4.0, -3.0, -0.5]],
            [[-0.5, -3.0, -1.0], [-6.0, -2.0, -1.0]],
        ]
    )
    # Example 0: votes class 0, 1, 0 -> 0. Example 1: votes 1, 2, 2 -> 2.
    np.testing.assert_array_equal(evaluation.combine_ensemble(scores, "vote"), [0, 2])
    # Means: example 0: [-1.17, -2, -2.33] -> 0; example 1: [-5, -2, -1.17] -> 2.
    np.testing.assert_array_equal(evaluation.combine_ensemble(scores, "mean"), [0, 2])
    tie = np.array([[[0.0, -1.0]], [[-1.0, 0.0]]])  # one vote each: the lowest index wins
    np.testing.assert_array_equal(evaluation.combine_ensemble(tie, "vote"), [0])


def test_ensemble_in_one_pass_equals_separate_runs(params):
    vocab = data.vocabulary()
    prompts = jax.random.normal(jax.random.key(0), (3, 4, CONFIG.d_model))
    ids = jnp.asarray(evaluation.encode_batch(vocab, ["a fine film", "bad", "so so"], 12))
    candidates = jnp.asarray(evaluation.encode_batch(vocab, ["negative", "positive"], 4))
    together = np.asarray(evaluation.ensemble_scores(CONFIG, params, prompts, ids, candidates))
    for n in range(3):
        alone = evaluation.score_candidates(CONFIG, params, prompts[n], ids, candidates)
        np.testing.assert_allclose(together[n], alone, atol=1e-5)


def test_ensemble_of_prompts_of_different_lengths_equals_separate_runs(params):
    """Left-padded and masked as a bank pads them (stack_prompts), each prompt of an ensemble
    scores what it scores alone, and `predict` votes on those scores."""
    from jaxprompt.evaluation.bank import stack_prompts

    vocab = data.vocabulary()
    rng = np.random.default_rng(1)
    prompts = [rng.normal(size=(n, CONFIG.d_model)).astype(np.float32) for n in (4, 2, 3)]
    stacked, mask = stack_prompts(prompts)
    assert stacked.shape == (3, 4, CONFIG.d_model) and mask.sum(1).tolist() == [4, 2, 3]
    texts = ["a fine film", "bad", "so so", "great fun"]
    ids = jnp.asarray(evaluation.encode_batch(vocab, texts, 12))
    labels = ["negative", "positive"]
    candidates = jnp.asarray(evaluation.encode_batch(vocab, labels, 4))
    together = np.asarray(
        evaluation.ensemble_scores(CONFIG, params, stacked, ids, candidates, prompt_mask=mask)
    )
    for n, prompt in enumerate(prompts):
        alone = evaluation.score_candidates(CONFIG, params, prompt, ids, candidates)
        np.testing.assert_allclose(together[n], alone, atol=1e-5)
    voted = evaluation.predict(
        CONFIG,
        params,
        {"prompt": stacked},
        vocab,
        texts,
        label_names=labels,
        lengths=data.Lengths(12, 4),
        batch_size=4,
        ensemble="vote",
        ensemble_mask=mask,
    )
    assert voted == [labels[i] for i in evaluation.combine_ensemble(together, "vote")]
    assert stack_prompts(prompts[:1] * 2)[1] is None  # one length: no mask
    with pytest.raises(ValueError, match="pass ensemble"):  # a mask alone is refused
        evaluation.predict(
            CONFIG,
            params,
            {"prompt": stacked[0]},
            vocab,
            texts,
            label_names=labels,
            ensemble_mask=mask,
        )
    with pytest.raises(ValueError, match="d_model 8 bank"):
        make_bank({"a": prompts[0]}, d_model=8)


def test_mixed_batch_equals_single_task_batches(params):
    vocab = data.vocabulary()
    rng = np.random.default_rng(0)
    prompts = {
        "sentiment": rng.normal(size=(3, 16)).astype(np.float32),
        "nli": rng.normal(size=(6, 16)).astype(np.float32),
    }
    labels = {"sentiment": ("negative", "positive"), "nli": ("entailment", "not_entailment")}
    bank = make_bank(prompts, labels, vocab=vocab, targets_length=4)
    assert bank.prompts.shape == (2, 6, 16) and bank.prompt_mask.sum(1).tolist() == [6, 3]
    texts = [f"sentence number {i} is {w}" for i, w in enumerate(["good", "bad", "odd"] * 4)]
    tasks = ["sentiment", "nli", "nli", "sentiment", "nli", "sentiment"] * 2
    mixed = predict_mixed(
        CONFIG, params, bank, vocab, tasks, texts, inputs_length=16, targets_length=4, batch_size=8
    )
    lengths = data.Lengths(16, 4)
    for task in prompts:
        rows = [i for i, t in enumerate(tasks) if t == task]
        alone = evaluation.predict(
            CONFIG,
            params,
            jnp.asarray(prompts[task]),
            vocab,
            [texts[i] for i in rows],
            label_names=labels[task],
            lengths=lengths,
            batch_size=8,
        )
        assert [mixed[i] for i in rows] == alone
    # Scores, not only argmaxes: left-padded + masked equals the unpadded prompt.
    ids = jnp.asarray(evaluation.encode_batch(vocab, texts[:4], 16))
    candidates = jnp.asarray(evaluation.encode_batch(vocab, list(labels["sentiment"]), 4))
    padded, mask = bank.gather(["sentiment"] * 4)
    np.testing.assert_allclose(
        evaluation.score_candidates(CONFIG, params, padded, ids, candidates, prompt_mask=mask),
        evaluation.score_candidates(
            CONFIG, params, jnp.asarray(prompts["sentiment"]), ids, candidates
        ),
        atol=1e-5,
    )


def test_nearest_tokens_equal_brute_force():
    rng = np.random.default_rng(1)
    embedding = rng.normal(size=(300, 8)).astype(np.float32)
    prompt = rng.normal(size=(5, 8)).astype(np.float32)
    ids, scores = nearest_tokens(prompt, embedding, k=4, vocab_size=250)
    for p in range(5):
        cosine = [
            float(prompt[p] @ e / np.linalg.norm(prompt[p]) / np.linalg.norm(e))
            for e in embedding[:250]
        ]
        expected = np.argsort(cosine)[::-1][:4]
        np.testing.assert_array_equal(ids[p], expected)
        np.testing.assert_allclose(scores[p], np.asarray(cosine)[expected], rtol=1e-5)
    similarity = position_similarity(prompt)
    np.testing.assert_allclose(np.diag(similarity), 1.0, rtol=1e-5)


def test_few_shot_input_is_built_as_documented(tmp_path):
    demos = [
        {"inputs": "sentence: great", "targets": "positive"},
        {"inputs": "sentence: awful", "targets": "negative"},
    ]
    assert build_input("sentence: fine", "Positive or negative?", demos) == (
        "Positive or negative? sentence: great positive sentence: awful negative sentence: fine"
    )
    assert build_input("sentence: fine") == "sentence: fine"
    (tmp_path / "train.csv").write_text(
        "text,label\n" + "".join(f"t{i},{i % 2}\n" for i in range(10))
    )
    (tmp_path / "dev.csv").write_text("text,label\nnew one,1\n")
    task = data.from_files(
        train=str(tmp_path / "train.csv"),
        validation=str(tmp_path / "dev.csv"),
        input_template="text: {text}",
        verbalizer={"0": "no", "1": "yes"},
        name="few_shot_test",
    )
    chosen = sample_demonstrations(task.examples("train"), 2, seed=7)
    assert chosen == sample_demonstrations(task.examples("train"), 2, seed=7)  # seeded
    shot_task = with_hard_prompt(task, "Yes or no?", shots=2, seed=7)
    expected = " ".join(
        ["Yes or no?"] + [f"{d['inputs']} {d['targets']}" for d in chosen] + ["text: new one"]
    )
    assert shot_task.examples("validation")[0]["inputs"] == expected
