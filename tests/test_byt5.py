"""ByT5's byte vocabulary against transformers' ByT5Tokenizer, and a ByT5-shaped model
prompt-tuned through `jaxprompt train` with the vocabulary its checkpoint names."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from jaxprompt.checkpoints import model_vocabulary
from jaxprompt.cli.main import main
from jaxprompt.data.vocabulary import vocabulary
from tests.torch_reference import TINY_T5_1_1, build_torch_t5, transformers
from tests.cli_helpers import gin_flags

TEXTS = [
    "hello world",
    "héllo wörld",
    "日本語のテキスト",
    "emoji 🙂 and <b>tags</b>",
    "",
    "a\tb\nc",
]


def test_byte_vocabulary_equals_byt5_tokenizer():
    tokenizer = transformers.ByT5Tokenizer()
    ours = vocabulary("byte")
    for text in TEXTS:
        assert ours.encode(text) + [1] == tokenizer(text).input_ids, text
        assert ours.decode(ours.encode(text) + [1]) == text
    assert len(tokenizer) == 384 and ours.vocab_size == 259
    rng = np.random.default_rng(0)
    for _ in range(200):  # decoding, up to the first EOS (where generation stops)
        ids = rng.integers(0, 384, size=rng.integers(1, 20)).tolist()
        upto = ids[: ids.index(1)] if 1 in ids else ids
        assert ours.decode(ids) == tokenizer.decode(upto, skip_special_tokens=True), ids


@pytest.mark.slow
def test_a_byt5_checkpoint_trains_with_its_byte_vocabulary(tmp_path):
    model = build_torch_t5(dict(TINY_T5_1_1, vocab_size=384), seed=5)
    model.save_pretrained(tmp_path / "byt5")
    transformers.ByT5Tokenizer().save_pretrained(tmp_path / "byt5")
    assert model_vocabulary(str(tmp_path / "byt5")) == "byte"
    assert not os.path.exists(tmp_path / "byt5" / "spiece.model")
    rows = [("a truly great film", 1), ("dull and awful", 0), ("great fun", 1), ("bad", 0)] * 4
    for name, subset in (("train.csv", rows), ("dev.csv", rows[:6])):
        (tmp_path / name).write_text("text,label\n" + "".join(f"{t},{l}\n" for t, l in subset))
    flags = gin_flags(
        tmp_path,
        "--gin.TrainerConfig.steps=4",
        "--gin.TrainerConfig.eval_every=2",
        "--gin.train.inputs_length=40",
        "--gin.train.targets_length=10",
    )
    flags = [f.replace(str(tmp_path / "model"), str(tmp_path / "byt5")) for f in flags]
    assert main(["train", *flags, f"--output_dir={tmp_path / 'run'}"]) == 0
    best = tmp_path / "run" / "best" / sorted(os.listdir(tmp_path / "run" / "best"))[-1]
    info = json.loads((best / "jaxprompt.json").read_text())
    assert info["vocabulary"]["path"] == "byte" and info["labels"] == ["negative", "positive"]
    out = tmp_path / "eval.json"
    assert main(["eval", "--prompt", str(best), "--output", str(out)]) == 0
    assert json.loads(out.read_text())["metrics"]["accuracy"] == pytest.approx(
        info["selected_on"]["value"]
    )
