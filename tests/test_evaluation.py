"""Rank classification and greedy decoding against transformers; metrics by hand; CSV e2e."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from tests.torch_reference import TINY_T5_1_1, build_torch_t5, random_ids, torch

pytest.importorskip("jaxprompt.data", reason="seqio/tensorflow not installed")
import jaxprompt  # noqa: E402
from jaxprompt import evaluation  # noqa: E402
from jaxprompt.data import Lengths  # noqa: E402


@pytest.fixture(scope="module", params=["t5", "mt5", "umt5"])
def pair(tmp_path_factory, request):
    model = build_torch_t5(dict(TINY_T5_1_1, vocab_size=32128), seed=11, family=request.param)
    directory = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(directory)
    config, params = jaxprompt.load_pretrained(directory)
    return model, config, params


def _torch_sequence_logprob(model, encoder_ids, target_ids, inputs_embeds=None, mask=None):
    with torch.no_grad():
        targets = torch.tensor(target_ids)
        decoder_inputs = torch.nn.functional.pad(targets[:, :-1], (1, 0))
        if inputs_embeds is None:
            ids = torch.tensor(encoder_ids)
            logits = model(
                input_ids=ids, attention_mask=(ids > 0).long(), decoder_input_ids=decoder_inputs
            ).logits
        else:
            logits = model(
                inputs_embeds=inputs_embeds, attention_mask=mask, decoder_input_ids=decoder_inputs
            ).logits
        log_probs = torch.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0]
        return (log_probs * (targets > 0)).sum(-1).numpy()


def test_rank_classification_matches_transformers(pair):
    model, config, params = pair
    rng = np.random.default_rng(0)
    encoder_ids = random_ids(rng, 4, 10, 500, lengths=[10, 6, 8, 3])
    candidates = np.array([[37, 1, 0], [5, 9, 1], [12, 1, 0]], np.int32)  # multi-token too
    scores = np.asarray(
        evaluation.score_candidates(
            config, params, None, jnp.asarray(encoder_ids), jnp.asarray(candidates)
        )
    )
    reference = np.stack(
        [_torch_sequence_logprob(model, encoder_ids, np.repeat(c[None], 4, 0)) for c in candidates],
        axis=1,
    )
    np.testing.assert_allclose(scores, reference, atol=1e-4)
    np.testing.assert_array_equal(scores.argmax(-1), reference.argmax(-1))


@pytest.mark.parametrize("with_prompt", [False, True])
def test_greedy_decoding_matches_transformers_generate(pair, with_prompt):
    model, config, params = pair
    rng = np.random.default_rng(1)
    encoder_ids = random_ids(rng, 3, 9, 500, lengths=[9, 4, 7])
    prompt = rng.normal(size=(4, config.d_model)).astype(np.float32) if with_prompt else None
    ours = np.asarray(
        evaluation.greedy_decode(
            config,
            params,
            None if prompt is None else jnp.asarray(prompt),
            jnp.asarray(encoder_ids),
            max_length=7,
        )
    )
    ids = torch.tensor(encoder_ids)
    mask = (ids > 0).long()
    kwargs = dict(
        max_new_tokens=7,
        num_beams=1,
        do_sample=False,
        min_length=0,
        decoder_start_token_id=0,
        eos_token_id=1,
        pad_token_id=0,
    )
    with torch.no_grad():
        if prompt is None:
            theirs = model.generate(input_ids=ids, attention_mask=mask, **kwargs)
        else:
            embeds = torch.cat(
                [torch.tensor(prompt)[None].expand(3, -1, -1), model.get_input_embeddings()(ids)], 1
            )
            mask = torch.cat([torch.ones(3, 4, dtype=torch.long), mask], 1)
            theirs = model.generate(inputs_embeds=embeds, attention_mask=mask, **kwargs)
    theirs = theirs.numpy()[:, 1:]  # drop the decoder start token
    theirs = np.pad(theirs, ((0, 0), (0, 7 - theirs.shape[1])))
    np.testing.assert_array_equal(ours, theirs)


def test_metrics_against_hand_computed_values():
    examples = [
        {"label": l, "targets": t, "group": g}
        for l, t, g in [
            (1, "positive", (0, 0)),
            (0, "negative", (0, 0)),
            (1, "positive", (0, 1)),
            (1, "positive", (0, 1)),
            (0, "negative", (1, 0)),
        ]
    ]
    predicted = ["positive", "positive", "positive", "negative", "negative"]
    metrics = evaluation.compute_metrics(
        ["accuracy", "f1", "matthews_corr", "multirc_em", "exact_match"],
        examples,
        predicted,
        ("negative", "positive"),
    )
    # TP=2, FP=1, FN=1, TN=1: accuracy 3/5, F1 = 2*2/(2*2+1+1) = 2/3,
    # MCC = (2*1 - 1*1) / sqrt(3*3*2*2) = 1/6; questions all right: only (1, 0) -> 1/3.
    assert metrics["accuracy"] == pytest.approx(60.0)
    assert metrics["f1"] == pytest.approx(200 / 3)
    assert metrics["matthews_corr"] == pytest.approx(100 / 6)
    assert metrics["multirc_em"] == pytest.approx(100 / 3)
    assert metrics["exact_match"] == pytest.approx(60.0)
    cb = [{"label": l} for l in (0, 0, 1, 2)]
    # class 0: P=1, R=1/2 -> 2/3; class 1: P=1/3, R=1 -> 1/2; class 2: 0 -> mean 7/18.
    assert evaluation.compute_metrics(["mean_f1"], cb, ["a", "b", "b", "b"], ("a", "b", "c"))[
        "mean_f1"
    ] == pytest.approx(700 / 18)
    record = [
        {"group": 0, "targets": "Paris", "answers": ["Paris", "the City of Paris"]},
        {"group": 0, "targets": "the City of Paris", "answers": ["Paris", "the City of Paris"]},
        {"group": 1, "targets": "Rome", "answers": ["Rome"]},
    ]
    # Query 0 once ("city of paris": EM with answer 2), query 1 "Rome city" vs "Rome": F1 2/3.
    scores = evaluation.compute_metrics(
        ["record_em", "record_f1"], record, ["City of Paris!", "ignored", "Rome city"], None
    )
    assert scores["record_em"] == pytest.approx(50.0)
    assert scores["record_f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    stsb = [{"label": v} for v in (1.0, 2.0, 3.0, 4.0)]
    values = evaluation.compute_metrics(
        ["pearson", "spearman"], stsb, ["1.2", "1.8", "3.4", "3.6"], None
    )
    assert values["spearman"] == pytest.approx(100.0)
    assert values["pearson"] == pytest.approx(
        100 * np.corrcoef([1, 2, 3, 4], [1.2, 1.8, 3.4, 3.6])[0, 1]
    )


def test_local_csv_task_trains_and_evaluates(tmp_path, pair):
    import jax

    from jaxprompt import data
    from jaxprompt.prompts.init import PromptConfig, init_prompt
    from jaxprompt.training.loop import TrainerConfig, train

    _, config, params = pair
    rng = np.random.default_rng(0)
    words = {"0": "awful dull bad", "1": "great fine good"}
    lines = ["text,label"] + [
        f"{' '.join(rng.choice(words[l].split(), 3))},{l}" for l in rng.choice(["0", "1"], 48)
    ]
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "dev.csv").write_text("\n".join(lines[:17]) + "\n")
    task = data.from_files(
        train=str(tmp_path / "train.csv"),
        validation=str(tmp_path / "dev.csv"),
        input_template="review: {text}",
        verbalizer={"0": "negative", "1": "positive"},
        name="csv_e2e",
    )
    vocab = data.vocabulary()
    lengths = Lengths(16, 4)
    label_ids = tuple(tuple(vocab.encode(w)) for w in task.label_names)
    prompt = init_prompt(
        jax.random.key(0),
        params["token_embedder"]["embedding"],
        PromptConfig(length=4, init="class_labels", label_token_ids=label_ids),
    )

    def eval_fn(trainable, frozen):
        return evaluation.evaluate(
            config, frozen, trainable, task, vocab, lengths=lengths, batch_size=8
        ).metrics

    result = train(
        model_config=config,
        frozen_params=params,
        trainable={"prompt": prompt},
        train_batches=data.train_batches("csv_e2e", 8, lengths, seed=0),
        eval_batches=data.eval_batches("csv_e2e", "validation", 8, lengths),
        eval_fn=eval_fn,
        output_dir=str(tmp_path / "run"),
        trainer_config=TrainerConfig(
            steps=20, eval_every=10, eval_metric="accuracy", eval_mode="max", progress=False
        ),
    )
    assert result.step == 20 and result.best_step in (10, 20)
    from jaxprompt.training.metrics_log import read_metrics

    validation = [r for r in read_metrics(str(tmp_path / "run")) if r["split"] == "validation"]
    assert [r["step"] for r in validation] == [10, 20]
    assert all(0 <= r["accuracy"] <= 100 and r["loss"] > 0 for r in validation)
    train_losses = [r["loss"] for r in read_metrics(str(tmp_path / "run")) if r["split"] == "train"]
    assert train_losses[-1] < train_losses[0]


@pytest.mark.slow
def test_two_process_evaluation_matches_one_process(tmp_path):
    """Rank, greedy, ensemble and prompt-bank predictions of a 2-process (2 x 4 CPU devices)
    run equal the 1-process run on 13 examples (global batch 8: the last batch is padded)."""
    import json

    from tests.helpers import run_processes
    from tests.multihost_eval import suite, write_task_files

    write_task_files(str(tmp_path))
    expected = suite(str(tmp_path))
    run_processes("tests.multihost_eval", 2, str(tmp_path))
    for i in range(2):
        with open(tmp_path / f"process_{i}.json") as f:
            got = json.load(f)
        assert got["process"] == i
        for key in ("rank", "greedy", "ensemble", "bank"):
            assert got[key] == json.loads(json.dumps(expected[key])), (i, key)
    assert len(expected["rank"]["predictions"]) == 13
