"""A decoder-only LM through the user's commands: a tiny random Gemma 3 saved by transformers
(config.json, model.safetensors) with its own tokenizer.json is prompt-tuned by `jaxprompt
train`, evaluated by `jaxprompt eval --prompt`, used by `jaxprompt predict`; the prompt
directory it writes loads in real PEFT (task_type CAUSAL_LM) on transformers' model with the
same logits and the same greedy continuation."""

from __future__ import annotations

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cli_helpers import jaxprompt_command
from decoder_reference import torch, torch_model

peft = pytest.importorskip("peft", reason="peft is not installed (pip install 'jaxprompt[torch]').")

WORDS = "a truly great film dull and awful fun bad movie positive negative".split()


def _tokenizer_json(path) -> None:
    """A word-level tokenizer.json: <pad> 0, <eos> 1, <bos> 2, <unk> 3, then WORDS."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3}
    vocab.update({w: i + 4 for i, w in enumerate(WORDS)})
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(path / "tokenizer.json"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("decoder")
    model = torch_model("gemma3")
    model.save_pretrained(path / "model")
    _tokenizer_json(path / "model")
    rows = [("a truly great film", 1), ("dull and awful", 0), ("great fun", 1), ("bad movie", 0)]
    for name, subset in (("train.csv", rows * 4), ("dev.csv", rows)):
        (path / name).write_text("text,label\n" + "".join(f"{t},{l}\n" for t, l in subset))
    return path


@pytest.mark.slow
def test_train_eval_predict_and_peft_on_a_decoder_only_model(workdir, tmp_path):
    from jaxprompt.checkpoints import load_pretrained
    from jaxprompt.data import vocabulary
    from jaxprompt.evaluation import scoring
    from jaxprompt.prompts.artifact import read_prompt

    run = tmp_path / "run"
    result = jaxprompt_command(
        [
            "train",
            *_user_files_flags(workdir),
            "--gin.TrainerConfig.steps=4",
            "--gin.TrainerConfig.eval_every=2",
            "--gin.TrainerConfig.progress=False",
            f"--gin.train.output_dir='{run}'",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    artifact = read_prompt(str(run))
    (best,) = (run / "best").iterdir()  # best/<step>/
    adapter = json.loads((best / "adapter_config.json").read_text())
    assert adapter["task_type"] == "CAUSAL_LM" and adapter["num_virtual_tokens"] == 3
    info = artifact.info
    assert info.model["architecture"]["model_type"] == "gemma3"
    assert info.vocabulary["path"].endswith("tokenizer.json")

    evaluated = jaxprompt_command(
        ["eval", "--prompt", str(run), "--output", str(tmp_path / "e.json")]
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    accuracy = json.loads((tmp_path / "e.json").read_text())["metrics"]["accuracy"]
    assert accuracy == pytest.approx(info.selected_on["value"])

    (tmp_path / "in.jsonl").write_text('{"text": "great fun"}\n{"text": "dull and awful"}\n')
    predicted = jaxprompt_command(
        [
            "predict",
            "--prompt",
            str(run),
            "--input",
            str(tmp_path / "in.jsonl"),
            "--output",
            str(tmp_path / "out.jsonl"),
        ]
    )
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    config, params = load_pretrained(str(workdir / "model"))
    vocab = vocabulary(str(workdir / "model" / "tokenizer.json"))
    from jaxprompt.data.pipeline import encode_batch

    ids = jnp.asarray(encode_batch(vocab, ["text: great fun", "text: dull and awful"], 8))
    prompt = jnp.asarray(artifact.trainable["prompt"])
    labels = jnp.asarray(encode_batch(vocab, ["negative", "positive"], 3, targets=True))
    scores = np.asarray(scoring.score_candidates(config, params, prompt, ids, labels))
    assert [r["prediction"] for r in rows] == [
        ["negative", "positive"][i] for i in scores.argmax(1)
    ]
    # Each candidate's log-likelihood is written beside the prediction.
    written = np.array([[r["log_likelihoods"][k] for k in ("negative", "positive")] for r in rows])
    np.testing.assert_allclose(written, scores, atol=1e-4)

    # Real PEFT on transformers' model from the same directory.
    model = torch_model("gemma3")
    tuned = peft.PeftModel.from_pretrained(model, str(best)).eval()
    text = [2] + vocab.encode("text: great fun")
    with torch.no_grad():
        ref = tuned(input_ids=torch.tensor([text])).logits[0, -1].numpy()
        # use_cache=False: with its KV cache, PEFT 0.21's generate (transformers 5.25) leaves
        # the full forward after the first token on Gemma 3 and Llama (measured, see
        # docs/decoder_only.md); without it, it is the full forward.
        generated = tuned.generate(
            input_ids=torch.tensor([text]),
            max_new_tokens=4,
            do_sample=False,
            eos_token_id=1,
            pad_token_id=0,
            use_cache=False,
        )[0, len(text) :].numpy()
    from jaxprompt.models import causal

    one = ids[:1]
    ours = causal.target_logits(config, params, one, jnp.asarray([[4, 1, 0]]), prompt)[0, 0]
    np.testing.assert_allclose(np.asarray(ours), ref, atol=1e-4)
    greedy = np.asarray(causal.greedy(config, params, one, 4, prompt))[0]
    assert greedy[: len(generated)].tolist() == generated.tolist()


@pytest.mark.slow
def test_serve_and_predict_bank_on_a_decoder_only_model(workdir, tmp_path):
    """`jaxprompt serve` of the tiny Gemma 3 with a bank of two tasks answers as single-task
    scoring with each unpadded prompt does; `predict --prompt_bank` (tasks mixed in one
    batch) agrees with the server."""
    pytest.importorskip("aiohttp")
    from test_serve import call

    from jaxprompt.checkpoints import load_pretrained
    from jaxprompt.cli.main import main as cli_main
    from jaxprompt.data import vocabulary
    from jaxprompt.data.pipeline import encode_batch
    from jaxprompt.evaluation import scoring
    from jaxprompt.serving.running import ServerThread
    from jaxprompt.serving.server import PromptServer, ServeConfig

    config, params = load_pretrained(str(workdir / "model"))
    vocab = vocabulary(str(workdir / "model" / "tokenizer.json"))
    labels = {"pos": ["negative", "positive"], "fun": ["bad", "fun", "great"]}
    rng = np.random.default_rng(0)
    bank = tmp_path / "bank"
    bank.mkdir()
    for name, length in (("pos", 3), ("fun", 2)):
        np.save(bank / f"{name}.npy", rng.normal(size=(length, config.d_model)).astype(np.float32))
    (bank / "bank.json").write_text(json.dumps({k: {"labels": v} for k, v in labels.items()}))
    texts = ["a truly great film", "dull and awful", "great fun", "bad movie", "fun"]
    settings = ServeConfig(
        max_batch=4,
        batch_buckets=(2, 4),
        length_buckets=(8, 16),
        inputs_length=16,
        targets_length=3,
        max_wait_ms=100.0,
        max_prompt_length=4,
        prompt_dirs=(str(bank),),
    )
    server = PromptServer(config, params, vocab, settings)
    server.load_bank_directory(str(bank))
    server.start()
    handle = ServerThread(server)
    answers = {}
    try:
        for task in labels:
            status, answer, _ = call(
                handle.url + "/v1/predict", "POST", {"task": task, "inputs": texts}
            )
            assert status == 200, answer
            answers[task] = answer["predictions"]
            expected = np.asarray(
                scoring.score_candidates(
                    config,
                    params,
                    np.load(bank / f"{task}.npy"),
                    encode_batch(vocab, texts, 16),
                    encode_batch(vocab, labels[task], 3, targets=True),
                )
            )
            got = np.asarray([[s[label] for label in labels[task]] for s in answer["scores"]])
            np.testing.assert_allclose(got, expected, atol=2e-4)
            assert answer["predictions"] == [labels[task][i] for i in expected.argmax(1)]
    finally:
        handle.stop()
    rows = [{"task": task, "inputs": text} for text in texts for task in labels]  # interleaved
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = ["predict", "--model", str(workdir / "model"), "--prompt_bank", str(bank)]
    argv += ["--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl")]
    assert cli_main(argv + ["--inputs_length", "16", "--targets_length", "3"]) == 0
    got = [json.loads(line)["prediction"] for line in open(tmp_path / "out.jsonl")]
    assert got == [answers[task][i] for i in range(len(texts)) for task in labels]


LLAMA_WORDS = "review : a truly great film dull and awful fun bad movie positive negative".split()


def _llama3_ids_model(path):
    """A tiny random Llama saved by transformers with Llama 3's ids, and its tokenizer.json:
    "!" 0 and '"' 1 (real tokens), <unk> 2, LLAMA_WORDS, <|begin_of_text|> 94,
    <|end_of_text|> 95 (EOS), <|reserved|> 96; no padding token."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    torch_model("llama3_ids").save_pretrained(path)
    vocab = {"!": 0, '"': 1, "<unk>": 2}
    vocab.update({w: i + 3 for i, w in enumerate(LLAMA_WORDS)})
    vocab.update({"<|begin_of_text|>": 94, "<|end_of_text|>": 95, "<|reserved|>": 96})
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(path / "tokenizer.json"))


@pytest.mark.slow
def test_a_model_with_llama3_ids_is_tuned_and_loads_in_real_peft(tmp_path):
    """Llama 3 gives ids 0 and 1 to real tokens and has no padding token. `jaxprompt train`
    tunes such a model (its ids reordered so that EOS is 1 and padding 0: "!" is kept, not
    read as padding), `predict` scores with it, and real PEFT on transformers' model of the
    same directory gives the same next-token logits and greedy continuation, in the
    checkpoint's own ids."""
    from jaxprompt.checkpoints import load_pretrained
    from jaxprompt.data import vocabulary
    from jaxprompt.data.pipeline import encode_batch
    from jaxprompt.evaluation import scoring
    from jaxprompt.models import causal
    from jaxprompt.prompts.artifact import read_prompt
    from jaxprompt.token_order import rows_back, to_checkpoint

    _llama3_ids_model(tmp_path / "model")
    rows = [("a truly great film !", 1), ('dull and awful " bad', 0), ("great fun !", 1)]
    rows += [("bad movie", 0)]
    for name, subset in (("train.csv", rows * 4), ("dev.csv", rows)):
        (tmp_path / name).write_text("text,label\n" + "".join(f"{t},{l}\n" for t, l in subset))
    vocab = vocabulary(str(tmp_path / "model" / "tokenizer.json"))
    ids = vocab.encode('great fun ! "')
    assert ids == [LLAMA_WORDS.index("great") + 3, LLAMA_WORDS.index("fun") + 3, 96, 95]
    assert vocab.decode(ids + [1, 0]) == 'great fun ! "'  # cut at EOS (1)

    run = tmp_path / "run"
    flags = _user_files_flags(tmp_path)
    result = jaxprompt_command(
        [
            "train",
            *flags,
            "--gin.TrainerConfig.steps=4",
            "--gin.TrainerConfig.eval_every=2",
            "--gin.TrainerConfig.progress=False",
            f"--gin.train.output_dir='{run}'",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (best,) = (run / "best").iterdir()
    (tmp_path / "in.jsonl").write_text('{"text": "great fun !"}\n')
    predicted = jaxprompt_command(
        [
            "predict",
            "--prompt",
            str(run),
            "--input",
            str(tmp_path / "in.jsonl"),
            "--output",
            str(tmp_path / "out.jsonl"),
        ]
    )
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    (row,) = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]

    config, params = load_pretrained(str(tmp_path / "model"))
    assert (config.bos_id, config.eos_id, config.pad_id) == (94, 1, 0)
    prompt = jnp.asarray(read_prompt(str(run)).trainable["prompt"])
    one = jnp.asarray(encode_batch(vocab, ["review: great fun !"], 8))
    labels = jnp.asarray(encode_batch(vocab, ["negative", "positive"], 3, targets=True))
    scores = np.asarray(scoring.score_candidates(config, params, prompt, one, labels))[0]
    written = [row["log_likelihoods"][k] for k in ("negative", "positive")]
    np.testing.assert_allclose(written, scores, atol=1e-4)

    tuned = peft.PeftModel.from_pretrained(torch_model("llama3_ids"), str(best)).eval()
    text = [94] + to_checkpoint(vocab.encode("review: great fun !"), vocab.token_moves)
    assert 0 in text  # "!" is id 0 in the checkpoint
    with torch.no_grad():
        ref = tuned(input_ids=torch.tensor([text])).logits[0, -1].numpy()
        generated = tuned.generate(
            input_ids=torch.tensor([text]),
            max_new_tokens=4,
            do_sample=False,
            eos_token_id=95,
            pad_token_id=96,
            use_cache=False,
        )[0, len(text) :].numpy()
    targets = jnp.asarray([[LLAMA_WORDS.index("fun") + 3, 1, 0]])
    ours = causal.target_logits(config, params, one, targets, prompt)[0, 0]
    np.testing.assert_allclose(rows_back(np.asarray(ours), config.token_moves), ref, atol=1e-4)
    greedy = np.asarray(causal.greedy(config, params, one, 4, prompt))[0].tolist()
    greedy = to_checkpoint(greedy, config.token_moves)
    assert greedy[: len(generated)] == generated.tolist()


def test_inspect_a_decoder_only_model_and_a_prompt_s_nearest_tokens(workdir, tmp_path, capsys):
    """`jaxprompt inspect` names the family of a decoder-only checkpoint, and reads a prompt
    made of two of its (sqrt(H)-scaled) embedding rows back as those two words."""
    from jaxprompt.checkpoints import load_pretrained
    from jaxprompt.cli.main import main
    from jaxprompt.models.family import family_of

    model = str(workdir / "model")
    assert main(["inspect", model]) == 0
    described = capsys.readouterr().out
    assert "decoder-only (gemma3) checkpoint" in described and "sliding_window" in described

    config, params = load_pretrained(model)
    table = np.asarray(params["token_embedder"]["embedding"])
    words = ["great", "film"]
    ids = [WORDS.index(w) + 4 for w in words]
    prompt = table[ids] * family_of(config).embedding_scale(config)
    np.save(tmp_path / "prompt.npy", prompt.astype(np.float32))
    heatmap = tmp_path / "similarity.png"
    args = ["inspect", str(tmp_path / "prompt.npy"), "--model", model, "--neighbours", "1"]
    assert main([*args, "--heatmap", str(heatmap)]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^\s+\d+: (.*)$", out, re.MULTILINE)
    assert rows == ["great (1.00)", "film (1.00)"], out
    assert heatmap.exists()


def _user_files_flags(workdir) -> list[str]:
    return [
        "--gin_file=runs/prompt_tuning.gin",
        "--gin_file=runs/user_files.gin",
        f"--gin.train.model='{workdir / 'model'}'",
        f"--gin.from_files.train='{workdir / 'train.csv'}'",
        f"--gin.from_files.validation='{workdir / 'dev.csv'}'",
        "--gin.from_files.verbalizer={'0': 'negative', '1': 'positive'}",
        "--gin.train.prompt_length=3",
        "--gin.train.batch_size=4",
        "--gin.train.inputs_length=8",
        "--gin.train.targets_length=3",
    ]


@pytest.mark.slow
def test_plan_a_decoder_only_run_and_its_extrapolated_cost(workdir, capsys):
    """`jaxprompt plan` compiles a decoder-only run (DecoderConfig.* bindings take effect),
    and the estimate's FLOPs and bytes, extrapolated from 1- and 2-layer compiles of each
    layer kind (sliding, global), equal those of compiling the full depth."""
    from jaxprompt.checkpoints import read_model_shapes
    from jaxprompt.cli.configure import configured_run
    from jaxprompt.cli.main import main
    from jaxprompt.experiments.runs import model_config
    from jaxprompt.planning.plan import _decoder_totals, plan_run

    flags = _user_files_flags(workdir)
    assert (
        main(["plan", *flags, "--gin.DecoderConfig.remat_policy='full'", "--cpu_devices", "1"]) == 0
    )
    out = capsys.readouterr().out
    assert "remat full" in out and "verdict: fits" in out, out

    files = [f[len("--gin_file=") :] for f in flags if f.startswith("--gin_file=")]
    run = configured_run(files, [f[len("--gin.") :] for f in flags if f.startswith("--gin.")])
    shapes = read_model_shapes(run.settings.model)
    config = model_config(run, shapes[0])
    assert set(config.layer_kinds) == {"sliding", "global"}
    full = plan_run(run, *shapes, jax.devices()[:1], with_eval=False, config=config)[0]

    def compiled(shallow, label):
        p = plan_run(run, *shapes, jax.devices()[:1], with_eval=False, config=shallow)[0]
        return p.tflop, p.gbytes

    tflop, gbytes = _decoder_totals(config, compiled)
    assert tflop == pytest.approx(full.tflop, rel=1e-3)
    assert gbytes == pytest.approx(full.gbytes, rel=0.05)


@pytest.mark.parametrize(
    "binding, message",
    [
        ("T5Config.dtype='bfloat16'", r"T5Config.dtype bound, but the model .* is a DecoderConfig"),
        ("DecoderConfig.remat_policy='bogus'", r"remat_policy='bogus' must be 'none', 'full'"),
        ("DecoderConfig.d_model=999", r"DecoderConfig.d_model = 999 but the model .* has 24"),
    ],
)
def test_bad_decoder_bindings_are_refused_in_one_line(workdir, capsys, binding, message):
    from jaxprompt.cli.main import main

    assert (
        main(["plan", *_user_files_flags(workdir), f"--gin.{binding}", "--cpu_devices", "1"]) == 2
    )
    err = capsys.readouterr().err
    assert re.search(message, err) and len(err.strip().splitlines()) == 1, err


@pytest.mark.slow
def test_a_real_peft_causal_lm_adapter_is_imported(workdir, tmp_path):
    """A prompt-tuning adapter made and saved by real PEFT (task_type CAUSAL_LM, PEFT's own
    random init) reads into jaxprompt, which then gives PEFT's next-token logits."""
    from jaxprompt.checkpoints import load_pretrained
    from jaxprompt.models import causal
    from jaxprompt.prompts.artifact import read_prompt

    torch.manual_seed(3)
    tuned = peft.get_peft_model(
        torch_model("gemma3"),
        peft.PromptTuningConfig(task_type=peft.TaskType.CAUSAL_LM, num_virtual_tokens=4),
    ).eval()
    tuned.save_pretrained(tmp_path / "adapter")
    prompt = read_prompt(str(tmp_path / "adapter")).prompt
    assert prompt.shape == (4, 24)
    ids = [2, 5, 6, 7]  # BOS "truly great film"
    with torch.no_grad():
        theirs = tuned(input_ids=torch.tensor([ids])).logits[0, -1].numpy()
    config, params = load_pretrained(str(workdir / "model"))
    batch = jnp.asarray([ids[1:] + [1]])  # the pipeline's input: tokens then EOS
    ours = causal.target_logits(config, params, batch, jnp.asarray([[4, 1]]), prompt)[0, 0]
    np.testing.assert_allclose(np.asarray(ours), theirs, atol=1e-4)


def _predict(workdir, tmp_path, prompt, *extra):
    from jaxprompt.cli.main import main

    (tmp_path / "in.jsonl").write_text('{"inputs": "great fun"}\n')
    return main(
        [
            "predict",
            "--model",
            str(workdir / "model"),
            "--prompt",
            str(prompt),
            "--input",
            str(tmp_path / "in.jsonl"),
            "--output",
            str(tmp_path / "out.jsonl"),
            "--labels",
            "negative,positive",
            *extra,
        ]
    )


def test_bad_decoder_inputs_are_one_line_each(workdir, tmp_path, capsys):
    """A T5-wide prompt on Gemma, a sequence beyond the model's context (predict and
    train), and a decoder-only checkpoint without its tokenizer: refused, one line each."""
    import shutil

    from jaxprompt.cli.main import main

    np.save(tmp_path / "t5.npy", np.zeros((3, 16), np.float32))  # the tiny T5's width
    np.save(tmp_path / "ok.npy", np.zeros((3, 24), np.float32))

    def refused(code: int, message: str) -> None:
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err

    refused(
        _predict(workdir, tmp_path, tmp_path / "t5.npy"),
        "prompt width 16 does not match the model's d_model 24",
    )
    # The tiny Gemma's context is 256 tokens: 3 + 1 + 250 + 16 > 256.
    refused(
        _predict(workdir, tmp_path, tmp_path / "ok.npy", "--inputs_length", "250"),
        "prompt_length 3 + BOS + inputs_length 250 + targets_length 16 exceeds the model's "
        "context of 256 tokens",
    )
    assert _predict(workdir, tmp_path, tmp_path / "ok.npy", "--inputs_length", "200") == 0
    capsys.readouterr()
    flags = [*_user_files_flags(workdir), "--gin.train.inputs_length=300"]
    refused(
        main(["train", *flags, f"--gin.train.output_dir='{tmp_path / 'run'}'"]),
        "exceeds the model's context of 256 tokens",
    )
    assert not (tmp_path / "run").exists()

    bare = tmp_path / "bare"
    shutil.copytree(workdir / "model", bare)
    (bare / "tokenizer.json").unlink()
    refused(
        main(["eval", "--model", str(bare), "--prompt", str(tmp_path / "ok.npy"), "--task", "x"]),
        f"{bare}: a decoder-only checkpoint without its tokenizer (no tokenizer.json)",
    )


def test_an_unsupported_gguf_architecture_names_the_supported_ones(tmp_path):
    gguf = pytest.importorskip("gguf", reason="writing GGUF needs the gguf package")
    from jaxprompt.checkpoints import load_pretrained
    from jaxprompt.checkpoints.errors import CheckpointError

    writer = gguf.GGUFWriter(str(tmp_path / "gpt2.gguf"), "gpt2")
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(CheckpointError, match=r"GGUF architecture 'gpt2' is not supported; "):
        load_pretrained(str(tmp_path / "gpt2.gguf"))


def test_a_gguf_model_without_the_extra_names_it(tmp_path):
    """`--model x.gguf` where the gguf package cannot be imported: one line naming the
    extra (a real interpreter with a finder that refuses gguf)."""
    import subprocess
    import sys

    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    code = (
        "import importlib.abc, sys\n"
        "class NoGguf(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'gguf': raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, NoGguf())\n"
        "from jaxprompt.cli.main import main\n"
        f"sys.exit(main(['inspect', {str(tmp_path / 'model.gguf')!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "pip install 'jaxprompt[gemma]'" in done.stderr, done.stderr[-2000:]


def test_a_gguf_tokenizer_with_transformers_older_than_5_18_is_refused(tmp_path, monkeypatch):
    """transformers <= 5.17 has no convert_gguf_tokenizer in its GGUF tokenizer mapping; its
    older converter splits Gemma 3 text differently, so jaxprompt names the version needed
    instead of building it (the attribute removed here as 5.17 lacks it)."""
    pytest.importorskip("gguf", reason="GGUF tokenizers need the gguf package")
    mapping = pytest.importorskip("transformers.integrations.gguf.gguf_tokenizer_mapping")
    from jaxprompt.data.hf_tokenizer import load_tokenizer
    from jaxprompt.data.readers import DataError

    monkeypatch.delattr(mapping, "convert_gguf_tokenizer")
    load_tokenizer.cache_clear()
    path = str(tmp_path / "model.gguf")
    with pytest.raises(DataError, match=r"model\.gguf: building a GGUF file's tokenizer needs "):
        load_tokenizer(path)
    with pytest.raises(DataError, match=r"transformers >= 5\.18 \(this is \d"):
        load_tokenizer(path)
