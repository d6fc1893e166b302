"""Pretrains jaxprompt's embedded tiny T5 with jaxprompt's own Flax T5, resumably.

    JAX_PLATFORMS=cpu python tools/pretrain_tiny.py --workdir ~/.cache/jaxprompt/pretrain \
        --steps 6000 --out jaxprompt/assets/t5_tiny_lm          # Ctrl-C, then --resume

On an accelerator, batches come from worker processes, and the tokenized corpus can travel as
one file to a machine without ../shared or WordNet:

    python tools/pretrain_tiny.py --corpus_cache corpus.npz ...   # here: builds corpus.npz
    python tools/pretrain_tiny.py --corpus_cache corpus.npz --data_workers 4 --batch 128 ...

The library code is `jaxprompt.pretraining` (objective, corpus, monitor, the run); the step,
checkpoints, resume, Ctrl-C and logs are `jaxprompt.training.weights`'. Resumable: orbax
checkpoints of (params, optimizer state) every --checkpoint_every steps in --workdir
(outside git); batches are a pure function of (seed, step), so a resumed run gives the same
parameters as an uninterrupted one. Every --monitor_every steps it logs the encoder's token
cosine and an SST-2 linear probe, and it refuses to write a collapsed model (token cosine
above --max_token_cosine).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

import _common  # noqa: F401  (puts the repository on sys.path)
from jaxprompt.pretraining.config import PretrainConfig
from jaxprompt.pretraining.corpus import build_corpus, load_corpus, save_corpus
from jaxprompt.pretraining.monitor import representation_report
from jaxprompt.pretraining.run import pretrain, write_model


def main() -> None:
    from jaxprompt.host_memory import reexec_with_malloc_tunables

    reexec_with_malloc_tunables()  # huge pages for XLA:CPU's step memory (see there)
    defaults = PretrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared")
    )
    parser.add_argument(
        "--workdir",
        default=os.path.expanduser("~/.cache/jaxprompt/pretrain_tiny"),
        help="checkpoints and logs (outside git)",
    )
    parser.add_argument("--out", default="jaxprompt/assets/t5_tiny_lm")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --workdir (otherwise it must be empty)",
    )
    parser.add_argument("--checkpoint_every", type=int, default=250)
    parser.add_argument("--monitor_every", type=int, default=250)
    parser.add_argument("--max_token_cosine", type=float, default=0.9)
    parser.add_argument(
        "--no_extra_text",
        action="store_true",
        help="task corpora only (no WordNet glosses or fortunes)",
    )
    parser.add_argument(
        "--corpus_cache",
        default=None,
        help="an .npz of the tokenized corpus: read if there, else built and "
        "written (a run on a machine without ../shared or WordNet)",
    )
    parser.add_argument(
        "--data_workers",
        type=int,
        default=0,
        help="processes making batches (0: inline; an accelerator needs ~4)",
    )
    for field in dataclasses.fields(PretrainConfig):
        default = getattr(defaults, field.name)
        kind = (
            (lambda text: text.lower() in ("1", "true", "yes"))
            if isinstance(default, bool)
            else type(default)
        )
        parser.add_argument(f"--{field.name}", type=kind, default=default)
    args = parser.parse_args()
    pc = PretrainConfig(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(PretrainConfig)}
    )

    if not 0 <= pc.warmup_steps < pc.steps:
        sys.exit(f"--warmup_steps {pc.warmup_steps} must be below --steps {pc.steps}.")
    saved = os.path.join(args.workdir, "pretrain_config.json")
    if os.path.exists(saved):
        with open(saved) as f:
            previous = PretrainConfig(**json.load(f))
        if not args.resume:
            sys.exit(
                f"{args.workdir} holds a run already; pass --resume to continue it, or "
                f"choose another --workdir."
            )
        if dataclasses.replace(previous, steps=pc.steps) != pc:
            sys.exit(f"--resume with other settings than {saved}: {dataclasses.asdict(previous)}")

    import sentencepiece

    from jaxprompt.data.vocabulary import DEFAULT_VOCABULARY
    from jaxprompt.models.t5 import T5

    if args.corpus_cache and os.path.exists(args.corpus_cache):
        corpus = load_corpus(args.corpus_cache)
        print(f"corpus: {args.corpus_cache}", flush=True)
        if corpus["extra_text"] == args.no_extra_text:
            sys.exit(
                f"{args.corpus_cache} was built {'with' if corpus['extra_text'] else 'without'}"
                f" WordNet and fortunes; run {'without' if corpus['extra_text'] else 'with'}"
                f" --no_extra_text or give another --corpus_cache."
            )
    else:
        processor = sentencepiece.SentencePieceProcessor(model_file=DEFAULT_VOCABULARY)
        corpus = build_corpus(args.shared, processor, extra_text=not args.no_extra_text)
        if args.corpus_cache:
            save_corpus(args.corpus_cache, corpus)
    streams, pairs = corpus["streams"], corpus["pairs"]
    print(
        f"corpus: {len(streams[0]):,} task tokens, {len(streams[-1]) if len(streams) > 1 else 0:,}"
        f" other tokens, {len(pairs):,} reverse-dictionary pairs",
        flush=True,
    )
    if pc.dictionary_fraction and not pairs:
        sys.exit("--dictionary_fraction needs WordNet: apt-get install wordnet-base")
    pairs = pairs if pc.dictionary_fraction else ()
    probe_ids, probe_labels = corpus["probe_ids"], corpus["probe_labels"]
    model = T5(pc.model_config())

    def monitor(step, params):
        return representation_report(model, params, probe_ids, probe_labels)

    start = time.time()
    embedding_cache = (
        f"{args.corpus_cache}.svd{pc.d_model}_seed{pc.seed}.npy" if args.corpus_cache else None
    )
    from jaxprompt.training.interrupts import TrainingInterrupted

    try:
        params = pretrain(
            pc,
            streams,
            args.workdir,
            checkpoint_every=args.checkpoint_every,
            monitor_every=args.monitor_every,
            monitor=monitor,
            pairs=pairs,
            data_workers=args.data_workers,
            embedding_cache=embedding_cache,
        )
    except TrainingInterrupted as e:
        sys.exit(f"{e}: add --resume to the same command.")
    report = monitor(pc.steps, params)
    print(f"done in {(time.time() - start) / 60:.1f} min: {report}")
    if report["token_cosine"] > args.max_token_cosine:
        sys.exit(
            f"refusing to write {args.out}: the encoder collapsed (token cosine "
            f"{report['token_cosine']:.3f} > {args.max_token_cosine})."
        )
    import jax

    write_model(
        args.out, pc.model_config(), jax.device_get(params), args.workdir, DEFAULT_VOCABULARY
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
