"""The embedded pretrained T5 (jaxprompt/assets/t5_tiny_lm): transformers reads it and gives
jaxprompt's logits; prompt tuning on it lowers the validation loss with the weights frozen;
the quickstart runs end to end; the pretraining tool resumes exactly."""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxprompt
from jaxprompt import data, partitioning
from jaxprompt.training import step as train_lib
from jaxprompt.models.t5 import T5
from jaxprompt.training.optimizers import OptimizerConfig, prompt_optimizer
from jaxprompt.prompts.init import PromptConfig, init_prompt
from jaxprompt.experiments.quickstart import TINY_MODEL, sst2_task
from jaxprompt.training.loop import TrainerConfig, train, validation_loss
from tests.conftest import REPO
from jaxprompt.pretraining.config import PretrainConfig
from jaxprompt.pretraining.corpus import load_corpus, save_corpus
from jaxprompt.pretraining.monitor import representation_report
from jaxprompt.pretraining.objectives import batches, make_batch, prefix_lm, span_corruption
from jaxprompt.pretraining.run import pretrain
from tests.helpers import tiny_config


def _load_tool(name: str):
    if str(REPO / "tools") not in sys.path:
        sys.path.insert(0, str(REPO / "tools"))  # as `python tools/<name>.py` has it
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _tiny_t5():
    """A random 1+1-layer gated-GELU T5 (vocab 64, d_model 16): (config, params)."""
    from jaxprompt.models.t5 import init_params

    config = tiny_config(
        vocab_size=64, num_layers=1, num_decoder_layers=1, tie_word_embeddings=True
    )
    return config, init_params(config, jax.random.key(0))


def test_embedded_model_card_and_loading():
    for name in ("config.json", "model.safetensors", "spiece.model", "MODEL_CARD.md"):
        assert os.path.exists(os.path.join(TINY_MODEL, name)), name
    assert os.path.getsize(os.path.join(TINY_MODEL, "model.safetensors")) <= 50 * 2**20
    config, params = jaxprompt.load_pretrained("tiny")
    assert config.is_gated  # T5.1.1's gated-GELU MLP
    assert params["token_embedder"]["embedding"].dtype == jnp.bfloat16


def test_embedded_model_matches_transformers():
    """transformers' T5ForConditionalGeneration reads the directory and gives the same logits."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model = transformers.T5ForConditionalGeneration.from_pretrained(
        TINY_MODEL, dtype=torch.float32
    ).eval()
    config, params = jaxprompt.load_pretrained("tiny", dtype=np.float32)
    vocab = data.vocabulary(os.path.join(TINY_MODEL, "spiece.model"))
    sentences = ["a gorgeous , witty , seductive movie .", "the plot is nothing but boilerplate ."]
    encoder = np.zeros((2, 16), np.int64)
    for row, text in enumerate(sentences):
        ids = vocab.encode(text)[:15] + [1]
        encoder[row, : len(ids)] = ids
    decoder = np.array([[0] + vocab.encode("positive"), [0] + vocab.encode("negative")])
    with torch.no_grad():
        theirs = model(
            input_ids=torch.tensor(encoder),
            attention_mask=torch.tensor(encoder > 0),
            decoder_input_ids=torch.tensor(decoder),
        ).logits.numpy()
    ours = np.asarray(
        T5(config).apply(
            {"params": params}, jnp.asarray(encoder, jnp.int32), jnp.asarray(decoder, jnp.int32)
        )
    )
    np.testing.assert_allclose(ours, theirs, atol=2e-4, rtol=1e-4)


@pytest.mark.slow
def test_prompt_tuning_the_embedded_model_lowers_validation_loss(tmp_path):
    config, params = jaxprompt.load_pretrained("tiny", dtype=np.float32)
    frozen_before = jax.tree.map(np.array, params)
    vocab = data.vocabulary(os.path.join(TINY_MODEL, "spiece.model"))
    task = sst2_task()
    lengths = data.Lengths(64, 4)
    labels = tuple(tuple(vocab.encode(w)) for w in task.label_names)
    prompt = init_prompt(
        jax.random.key(0),
        params["token_embedder"]["embedding"],
        PromptConfig(length=10, init="class_labels", label_token_ids=labels),
    )
    eval_batches = data.eval_batches(task.name, "validation", 50, lengths)

    optimizer = prompt_optimizer(OptimizerConfig())
    steps = train_lib.shard_steps(
        config,
        optimizer,
        train_lib.StepConfig(),
        train_lib.init_train_state({"prompt": prompt}, optimizer, 0),
        partitioning.make_mesh(),
    )
    before = validation_loss(steps, {"prompt": prompt}, params, eval_batches)["loss"]
    result = train(
        model_config=config,
        frozen_params=params,
        trainable={"prompt": prompt},
        train_batches=data.train_batches(task.name, 32, lengths, seed=0),
        output_dir=str(tmp_path),
        eval_batches=eval_batches,
        trainer_config=TrainerConfig(steps=40, eval_every=40, progress=False),
    )
    after = result.best_metric
    print(f"embedded model, SST-2 validation loss: {before:.4f} -> {after:.4f} in 40 steps")
    assert after < before
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, params), frozen_before)


@pytest.mark.slow
def test_quickstart_smoke(tmp_path, capsys):
    """The quickstart end to end with few steps: its three lines, a learning curve, a prompt."""
    from jaxprompt.experiments import quickstart

    config = quickstart.QuickstartConfig(
        output_dir=str(tmp_path / "qs"), steps=6, eval_every=3, validation_rows=64, test_rows=64
    )
    result = quickstart.run(config)
    printed = capsys.readouterr().out
    for line in ("majority class", "zero-shot hard prompt", "prompt tuning"):
        assert line in printed
    assert os.path.exists(tmp_path / "qs" / "learning_curve.png")
    assert np.load(result["prompt_path"]).shape[0] == quickstart.T5_RECIPE.prompt_length
    # The majority line is the share of the majority training label among the test rows.
    labels = [e["label"] for e in sst2_task().examples("test")][:64]
    assert result["majority"] == pytest.approx(100 * np.mean(np.asarray(labels) == 1))
    # The run computed in the dtype it reports (auto: bfloat16 on a CPU with AMX).
    assert result["dtype"] == quickstart.resolve_dtype("auto")
    with open(tmp_path / "qs" / "model_info.json") as f:
        assert json.load(f)["execution"]["dtype"] == result["dtype"]


def test_quickstart_dtype_follows_the_cpu_and_the_environment(tmp_path, monkeypatch):
    from jaxprompt.experiments import quickstart

    amx = tmp_path / "amx"
    amx.write_text("processor\t: 0\nflags\t\t: fpu avx512_bf16 amx_bf16 amx_tile\n")
    plain = tmp_path / "plain"
    plain.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f\n")
    assert quickstart.cpu_has_amx(str(amx)) and not quickstart.cpu_has_amx(str(plain))
    assert not quickstart.cpu_has_amx(str(tmp_path / "missing"))
    epyc = tmp_path / "epyc"  # bfloat16 dot instructions without AMX
    epyc.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16\n")
    monkeypatch.delenv("JAXPROMPT_DTYPE", raising=False)
    auto = lambda cpu, decoder_only=False: quickstart.resolve_dtype("auto", decoder_only, str(cpu))
    assert auto(amx) == auto(amx, True) == "bfloat16"
    assert auto(epyc) == "float32" and auto(epyc, True) == "bfloat16"  # decoder-only measured
    assert auto(plain) == auto(plain, True) == auto(tmp_path / "missing", True) == "float32"
    assert quickstart.resolve_dtype("float32", True, str(amx)) == "float32"
    # A decoder-only LM trains in float32 under "auto" and is scored in bfloat16 where fast.
    dtypes = lambda dtype, cpu, decoder_only: quickstart.run_dtypes(dtype, decoder_only, str(cpu))
    assert dtypes("auto", epyc, True) == dtypes("auto", amx, True) == ("float32", "bfloat16")
    assert dtypes("auto", amx, False) == ("bfloat16", "bfloat16")
    assert dtypes("auto", plain, True) == ("float32", "float32")
    assert dtypes("bfloat16", epyc, True) == ("bfloat16", "bfloat16")  # explicit: both
    monkeypatch.setenv("JAXPROMPT_DTYPE", "float32")  # the opt-out
    assert auto(amx, True) == "float32" and dtypes("auto", amx, True) == ("float32", "float32")
    assert quickstart.resolve_dtype("bfloat16") == "bfloat16"  # an explicit flag wins
    with pytest.raises(ValueError, match="float16"):
        quickstart.resolve_dtype("float16")


@pytest.mark.slow
def test_pretraining_resumes_exactly(tmp_path):
    """4 steps in one go == 2 steps, an interruption, then --resume for 2 more."""
    pc = PretrainConfig(
        d_model=16,
        num_heads=2,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_decoder_layers=1,
        steps=4,
        batch=4,
        inputs_length=32,
        targets_length=12,
        warmup_steps=2,
    )
    rng = np.random.default_rng(0)
    streams = [
        rng.integers(3, 32000, 5000).astype(np.int32),
        rng.integers(3, 32000, 5000).astype(np.int32),
    ]
    whole = pretrain(pc, streams, str(tmp_path / "a"), checkpoint_every=2, progress=False)
    pretrain(pc, streams, str(tmp_path / "b"), checkpoint_every=2, stop_after=2, progress=False)
    resumed = pretrain(pc, streams, str(tmp_path / "b"), checkpoint_every=2, progress=False)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(whole), jax.device_get(resumed))
    first = pretrain(
        pc, streams, str(tmp_path / "c"), checkpoint_every=2, stop_after=2, progress=False
    )
    assert not all(
        np.array_equal(a, b)
        for a, b in zip(
            jax.tree.leaves(jax.device_get(first)), jax.tree.leaves(jax.device_get(whole))
        )
    )


def test_span_corruption_and_prefix_lm_rebuild_the_text():
    """Each objective's inputs and targets together hold exactly the original chunk."""
    chunk = np.arange(100, 163, dtype=np.int32)
    rng = np.random.default_rng(0)
    inputs, targets = span_corruption(chunk, rng)
    assert inputs[-1] == 1 and targets[-1] == 1
    rebuilt, spans = [], {}
    key = None
    for t in targets[:-1]:
        if t >= 32000:
            key = t
            spans[key] = []
        else:
            spans[key].append(t)
    for t in inputs[:-1]:
        rebuilt.extend(spans[t] if t >= 32000 else [t])
    np.testing.assert_array_equal(rebuilt, chunk)
    assert 0.1 < sum(len(s) for s in spans.values()) / len(chunk) < 0.2  # 15 % noise
    inputs, targets = prefix_lm(chunk, rng, 23)
    assert len(targets) - 1 <= 23
    np.testing.assert_array_equal(np.concatenate([inputs[:-1], targets[:-1]]), chunk)


def test_monitor_sees_a_collapsed_encoder():
    """representation_report's token cosine is near 1 when every token is encoded alike."""
    config, params = _tiny_t5()
    rng = np.random.default_rng(0)
    ids = rng.integers(3, 64, (40, 10)).astype(np.int32)
    labels = rng.integers(0, 2, 40)
    healthy = representation_report(T5(config), params, ids, labels)
    collapsed_params = jax.tree.map(lambda x: x, params)
    # Every token embedded alike (one shared vector, tiny noise): the collapse signature.
    embedding = np.ones((64, 16), np.float32) + 1e-3 * rng.normal(size=(64, 16))
    collapsed_params["token_embedder"]["embedding"] = jnp.asarray(embedding, jnp.float32)
    collapsed = representation_report(T5(config), collapsed_params, ids, labels)
    assert healthy["token_cosine"] < 0.6
    assert collapsed["token_cosine"] > 0.99


def test_heldout_loss_is_the_mean_target_nll():
    """tools/heldout_loss.py's objective_nll == -mean log softmax at the targets, by numpy."""
    heldout_loss = _load_tool("heldout_loss")
    config, params = _tiny_t5()
    rng = np.random.default_rng(0)
    target = rng.integers(1, 64, (3, 5)).astype(np.int32)
    weights = (rng.random((3, 5)) < 0.7).astype(np.float32)
    batch = {
        "encoder_input_tokens": rng.integers(1, 64, (3, 7)).astype(np.int32),
        "decoder_input_tokens": np.pad(target[:, :-1], ((0, 0), (1, 0))),
        "decoder_target_tokens": target,
        "decoder_loss_weights": weights,
    }
    logits = np.asarray(
        T5(config).apply(
            {"params": params}, batch["encoder_input_tokens"], batch["decoder_input_tokens"]
        ),
        np.float64,
    )
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_probs, target[..., None], -1)[..., 0]
    expected = -(picked * weights).sum() / weights.sum()
    got = heldout_loss.objective_nll(T5(config), params, [batch, batch])
    assert got == pytest.approx(expected, rel=1e-5)


def test_reverse_dictionary_rows_answer_a_gloss_with_its_word():
    """dictionary_fraction rows hold a (gloss, word) pair whole; the rest is unchanged."""
    pairs = [
        (np.asarray([10 + i, 20 + i, 30 + i, 1], np.int32), np.asarray([40 + i, 1], np.int32))
        for i in range(5)
    ]
    stream = [np.arange(100, 2000, dtype=np.int32)]
    pc = PretrainConfig(
        batch=64, inputs_length=16, targets_length=8, mlm_weight=0.0, dictionary_fraction=0.5
    )
    batch = make_batch(stream, 3, pc, pairs)
    by_word = {int(t[0]): g for g, t in pairs}
    rows = [r for r in range(64) if int(batch["decoder_target_tokens"][r, 0]) in by_word]
    assert 16 < len(rows) < 48  # about half
    for r in rows:
        gloss = by_word[int(batch["decoder_target_tokens"][r, 0])]
        np.testing.assert_array_equal(batch["encoder_input_tokens"][r, :4], gloss)
        assert (
            batch["decoder_target_tokens"][r, 1] == 1
            and batch["decoder_loss_weights"][r].sum() == 2
        )
    np.testing.assert_array_equal(
        batch["encoder_input_tokens"], make_batch(stream, 3, pc, pairs)["encoder_input_tokens"]
    )


def test_batch_workers_give_the_inline_batches_in_order():
    """--data_workers: the worker processes' batches are make_batch's, step by step."""
    pairs = [
        (np.asarray([10 + i, 20 + i, 1], np.int32), np.asarray([40 + i, 1], np.int32))
        for i in range(5)
    ]
    streams = [np.arange(100, 2000, dtype=np.int32), np.arange(3000, 9000, dtype=np.int32)]
    pc = PretrainConfig(batch=8, inputs_length=16, targets_length=8, dictionary_fraction=0.25)
    inline = list(batches(streams, pc, pairs, 3, 12, workers=0))
    pooled = list(batches(streams, pc, pairs, 3, 12, workers=2))
    assert len(inline) == len(pooled) == 9
    for step, (a, b) in enumerate(zip(inline, pooled), start=3):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"step {step} {key}")
    assert not np.array_equal(inline[0]["encoder_input_tokens"], inline[1]["encoder_input_tokens"])


def test_corpus_cache_round_trip(tmp_path):
    """--corpus_cache: the tokenized corpus read back is the one written (uint16 on disk)."""
    rng = np.random.default_rng(0)
    corpus = {
        "streams": [
            rng.integers(1, 32128, 500).astype(np.int32),
            rng.integers(1, 32128, 300).astype(np.int32),
        ],
        "pairs": [
            (rng.integers(1, 32128, n).astype(np.int32), rng.integers(1, 32128, 2).astype(np.int32))
            for n in (3, 7, 1)
        ],
        "probe_ids": rng.integers(0, 32128, (4, 48)).astype(np.int32),
        "probe_labels": np.asarray([0, 1, 1, 0]),
        "extra_text": True,
    }
    path = str(tmp_path / "corpus.npz")
    save_corpus(path, corpus)
    loaded = load_corpus(path)
    for a, b in zip(corpus["streams"], loaded["streams"]):
        np.testing.assert_array_equal(a, b)
        assert b.dtype == np.int32
    assert len(loaded["pairs"]) == 3
    for (a, b), (c, d) in zip(corpus["pairs"], loaded["pairs"]):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    np.testing.assert_array_equal(corpus["probe_ids"], loaded["probe_ids"])
    np.testing.assert_array_equal(corpus["probe_labels"], loaded["probe_labels"])
    assert loaded["extra_text"] is True


def test_sst2_split_keeps_the_phrases_of_one_sentence_together():
    tool = _load_tool("make_sst2_subset")
    labelled = {
        "a moving , funny film .": "1",
        "funny film .": "1",  # 2 words: a common phrase
        "the plot is a mess .": "0",
        "and the plot is a mess .": "0",
        "but the acting is good .": "1",
        "dull .": "0",
    }
    groups = sorted(sorted(g) for g in tool.source_groups(list(labelled)))
    assert groups == [
        ["a moving , funny film ."],
        ["and the plot is a mess .", "the plot is a mess ."],
        ["but the acting is good ."],
        ["dull ."],
        ["funny film ."],
    ]
    for seed in range(20):
        train, validation = tool.split(labelled, 2, 2, seed=seed)
        train_texts = [row.rsplit("\t", 1)[0] for row in train]
        for row in validation:
            text = row.rsplit("\t", 1)[0]
            assert len(text.split()) >= tool.MIN_LINK_WORDS
            assert not any(
                text in t or t in text for t in train_texts if len(t.split()) >= tool.MIN_LINK_WORDS
            ), (text, train_texts)


def test_bundled_sst2_validation_and_test_sentences_are_not_in_training():
    """No validation or test sentence (4 words or more) is a training row or inside one; the
    test file's only short rows inside training text are 'bad .' and 'very bad .'."""
    min_words = _load_tool("make_sst2_subset").MIN_LINK_WORDS  # the split's own threshold
    task = sst2_task()

    def texts(split):
        return [e["inputs"].removeprefix("sentence: ") for e in task.examples(split)]

    joined = "\n".join(texts("train"))
    for split in ("validation", "test"):
        inside = [t for t in texts(split) if t in joined and len(t.split()) >= min_words]
        assert not inside, f"{split} rows inside a training row: {inside[:3]}"
