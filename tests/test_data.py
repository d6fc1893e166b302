"""Tasks in the paper's format, users' files, batches, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import shared_path

from jaxprompt import data
from jaxprompt.config import T5Config
from jaxprompt.data import DataError, Lengths
from jaxprompt.data.formats import TASK_FORMATS


@pytest.fixture()
def superglue_dir():
    path = shared_path("data", "superglue")
    data.set_data_dir(str(path))
    return path


def _first(name, split="validation"):
    return data.get_task(name).examples(split)[0]


# Expected strings written by hand from T5's GLUE/SuperGLUE text preprocessors (keys sorted
# unless the task fixes them, "key: value" joined by spaces) without the task-name prefix.
def test_superglue_first_examples(superglue_dir):
    assert _first("super_glue_cb") == {
        "inputs": "hypothesis: Valence was helping premise: Valence the void-brain, Valence the "
        "virtuous valet. Why couldn't the figger choose his own portion of titanic "
        "anatomy to shaft? Did he think he was helping?",
        "targets": "contradiction",
        "label": 1,
        "group": 0,
    }
    assert _first("super_glue_copa")["inputs"] == (
        "choice1: The toilet filled with water. choice2: Water flowed from the spout. "
        "premise: The man turned on the faucet. question: effect"
    )
    assert _first("super_glue_copa")["targets"] == "choice2"
    assert _first("super_glue_wic")["inputs"] == (
        "sentence1: An emerging professional class. sentence2: Apologizing for losing your "
        "temper, even though you were badly provoked, showed real class. word: class"
    )
    assert _first("super_glue_wic")["targets"] == "False"
    assert _first("super_glue_rte")["inputs"] == (
        "hypothesis: Christopher Reeve had an accident. premise: Dana Reeve, the widow of the "
        "actor Christopher Reeve, has died of lung cancer at age 44, according to the "
        "Christopher Reeve Foundation."
    )
    assert _first("super_glue_rte")["targets"] == "not_entailment"
    assert _first("super_glue_wsc") == {
        "inputs": "text: Bernard , who had not told the government official that he was less "
        "than 21 when he filed for a homestead claim, did not consider that he had "
        "done anything dishonest. Still, * anyone * who knew that he was 19 years old "
        "could take his claim away from # him # .",
        "targets": "False",
        "label": 0,
        "group": 0,
    }
    boolq = _first("super_glue_boolq")
    assert boolq["inputs"].startswith("passage: Ethanol fuel -- All biomass goes through")
    assert boolq["inputs"].endswith(" question: does ethanol take more energy make that produces")
    assert boolq["targets"] == "False"
    multirc = _first("super_glue_multirc")
    assert multirc["inputs"].startswith(
        "question: Would the mass of a baseball affect how much force you have to use to pick "
        "it up? answer: No paragraph: What causes a change in motion? The application of a "
        "force."
    )
    assert "<br>" not in multirc["inputs"] and "<b>" not in multirc["inputs"]
    assert multirc["targets"] == "False" and multirc["group"] == (0, 0)  # (paragraph, question)
    assert len(data.get_task("super_glue_rte").examples("train")) == 2490


def test_sst2_and_glue_formats():
    data.set_data_dir(str(shared_path("data")))
    assert _first("glue_sst2", "test") == {
        "inputs": "sentence: it 's a charming and often affecting journey .",
        "targets": "positive",
        "label": 1,
        "group": 2,
    }
    assert len(data.get_task("glue_sst2").examples("test")) == 872
    mnli = TASK_FORMATS["glue_mnli"].format(
        {"premise": "A man sleeps.", "hypothesis": "A person rests.", "label": 0, "idx": 3}
    )
    assert mnli == [
        {
            "inputs": "hypothesis: A person rests. premise: A man sleeps.",
            "targets": "entailment",
            "label": 0,
            "group": 3,
        }
    ]
    stsb = TASK_FORMATS["glue_stsb"].format(
        {"sentence1": "a", "sentence2": "b", "label": 3.87, "idx": 0}
    )
    assert stsb[0]["targets"] == "3.8" and stsb[0]["inputs"] == "sentence1: a sentence2: b"
    record = TASK_FORMATS["super_glue_record"].format(
        {
            "passage": "Rain in Paris.\n@highlight\nCold\n@highlight\nWet",
            "query": "@placeholder is wet",
            "entities": ["Paris", "Rain"],
            "answers": ["Paris"],
            "idx": 0,
        }
    )
    assert record == [
        {
            "inputs": "query: @placeholder is wet entities: Paris, Rain passage: Rain in "
            "Paris. Cold. Wet",
            "targets": "Paris",
            "label": -1,
            "group": 0,
            "answers": ["Paris"],
        }
    ]


def test_numpy_batches_equal_seqio_batches(superglue_dir):
    """jaxprompt's numpy pipeline gives the batches seqio's tokenize + append_eos_after_trim +
    EncDecFeatureConverter give, token for token (evaluation order), and the same vocabulary."""
    seqio = pytest.importorskip("seqio")
    from jaxprompt.data import pipeline

    task = data.get_task("super_glue_rte")
    data.register_seqio_task(task)
    lengths = Lengths(48, 6)  # short inputs: many examples are truncated, as in real runs
    ours = list(data.eval_batches(task.name, "validation", 16, lengths)())
    converted = pipeline._seqio_converted(task.name, "validation", lengths, False, 0, 1, None)
    theirs = [data.pad_batch(b, 16) for b in converted.batch(16).as_numpy_iterator()]
    assert len(ours) == len(theirs) == 18
    for a, b in zip(ours, theirs):
        assert set(a) == set(b)
        for key in a:
            assert a[key].dtype == b[key].dtype, key
            np.testing.assert_array_equal(a[key], b[key])
    reference = seqio.SentencePieceVocabulary(data.DEFAULT_VOCABULARY, extra_ids=100)
    text = task.examples("validation")[0]["inputs"] + " <extra_id_3> café"
    assert data.vocabulary().encode(text) == list(reference.encode(text))
    ids = data.vocabulary().encode(text) + [32096, 1, 5, 6]
    assert data.vocabulary().decode(ids) == reference.decode(ids)
    assert data.vocabulary().vocab_size == reference.vocab_size


def test_batches_are_deterministic_and_resumable(superglue_dir):
    batches = data.train_batches("super_glue_rte", batch_size=4, lengths=Lengths(64, 6), seed=3)
    first = [next(batches(0)) for _ in range(1)][0]
    stream = batches(0)
    run = [next(stream) for _ in range(3)]
    np.testing.assert_array_equal(run[0]["encoder_input_tokens"], first["encoder_input_tokens"])
    resumed = next(batches(2))
    for key in run[2]:
        np.testing.assert_array_equal(resumed[key], run[2][key])
    assert run[0]["encoder_input_tokens"].shape == (4, 64)
    vocab = data.vocabulary()
    targets = {tuple(row) for row in run[0]["decoder_target_tokens"].tolist()}
    allowed = {
        tuple(vocab.encode(w) + [1] + [0] * (5 - len(vocab.encode(w))))
        for w in ("entailment", "not_entailment")
    }
    assert targets <= allowed
    shard = data.train_batches(
        "super_glue_rte", 4, Lengths(64, 6), seed=3, shard_index=1, num_shards=2
    )
    assert next(shard(0))["encoder_input_tokens"].shape == (2, 64)


def test_truncation_is_counted_and_strict_mode_refuses(superglue_dir):
    task, vocab = data.get_task("super_glue_rte"), data.vocabulary()
    report = data.truncation_report(task, "validation", vocab, Lengths(32, 8))
    lengths = [len(vocab.encode(e["inputs"])) + 1 for e in task.examples("validation")]
    assert report.truncated_inputs == sum(n > 32 for n in lengths) > 0
    assert report.examples == 277 and report.truncated_targets == 0
    with pytest.raises(DataError, match="strict mode"):
        data.truncation_report(task, "validation", vocab, Lengths(32, 8), strict=True)


def test_user_files_and_their_errors(tmp_path):
    csv_path = tmp_path / "train.csv"
    csv_path.write_text("text,label\ngreat film,1\nawful,0\n")
    task = data.from_files(
        train=str(csv_path),
        input_template="review: {text}",
        verbalizer={"0": "negative", "1": "positive"},
        name="test_reviews",
    )
    assert task.examples("train") == [
        {"inputs": "review: great film", "targets": "positive", "label": 1, "group": 2},
        {"inputs": "review: awful", "targets": "negative", "label": 0, "group": 3},
    ]
    assert task.label_names == ("negative", "positive")

    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text(
        json.dumps({"text": "ok", "label": 1}) + "\n" + json.dumps({"label": 0}) + "\n"
    )
    bad = data.from_files(train=str(jsonl), verbalizer={"0": "n", "1": "p"}, name="bad_fields")
    with pytest.raises(DataError, match=r"bad.jsonl, line 2: missing field\(s\) \['text'\]"):
        bad.examples("train")
    labels = tmp_path / "labels.tsv"
    labels.write_text("text\tlabel\na\t1\nb\t7\n")
    unknown = data.from_files(train=str(labels), verbalizer={"0": "n", "1": "p"}, name="bad_label")
    with pytest.raises(DataError, match=r"labels.tsv, line 3: label '7' is not in the verbalizer"):
        unknown.examples("train")
    empty = tmp_path / "empty.csv"
    empty.write_text("text,label\n")
    with pytest.raises(DataError, match="holds no examples"):
        data.from_files(train=str(empty), name="empty_task").examples("train")
    with pytest.raises(DataError, match="has no 'validation' file"):
        task.examples("validation")


def test_bad_superglue_line_and_vocabulary(tmp_path):
    (tmp_path / "RTE").mkdir()
    (tmp_path / "RTE" / "val.jsonl").write_text(
        json.dumps({"premise": "p", "hypothesis": "h", "label": "entailment", "idx": 0})
        + "\n"
        + json.dumps({"premise": "p", "label": "entailment", "idx": 1})
        + "\n"
    )
    data.set_data_dir(str(tmp_path))
    with pytest.raises(DataError, match=r"val.jsonl, line 2: missing field\(s\) \['hypothesis'\]"):
        data.get_task("super_glue_rte").examples("validation")
    with pytest.raises(
        DataError, match="vocabulary has 32100 ids but the model's embedding has 64 rows"
    ):
        data.check_vocabulary(data.vocabulary(), T5Config(vocab_size=64))
    with pytest.raises(DataError, match="Unknown task 'glue_nope'"):
        data.get_task("glue_nope")
