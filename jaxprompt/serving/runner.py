"""The frozen model behind the server: fixed shape buckets, compiled once at start-up.

A batch of B examples with inputs of at most T tokens runs at the smallest batch bucket
>= B and length bucket >= T (padding rows and tokens), so after `warm_up` no request
waits for a compile. Rank-classification rows score their own task's labels
(`score_own_candidates`); greedy rows decode with the KV cache. The frozen params may be
sharded over a mesh with the training rules (`jaxprompt.partitioning`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxprompt import partitioning
from jaxprompt.config import T5Config
from jaxprompt.data.vocabulary import EOS_ID
from jaxprompt.evaluation.bank import PromptBank
from jaxprompt.evaluation.scoring import decode_tokens, greedy_decode, score_own_candidates
from jaxprompt.models.family import family_of
from jaxprompt.serving.registry import BankSnapshot

logger = logging.getLogger(__name__)


def default_buckets(limit: int, smallest: int, factor: int) -> tuple[int, ...]:
    """smallest, smallest * factor, ... below `limit`, then `limit` itself."""
    buckets, size = [], smallest
    while size < limit:
        buckets.append(size)
        size *= factor
    return tuple(buckets) + (limit,)


def bucket_for(size: int, buckets: Sequence[int]) -> int:
    for bucket in buckets:
        if size <= bucket:
            return bucket
    raise ValueError(f"{size} is over the largest bucket {buckets[-1]}.")


@dataclasses.dataclass
class Example:
    """One input of a request: its task and token ids (EOS included, unpadded)."""

    task: str
    ids: np.ndarray  # [n] int32


@dataclasses.dataclass
class Result:
    prediction: str
    scores: dict[str, float] | None  # per label (rank classification); None when decoded
    error: str | None = None


class ModelRunner:
    """Runs mixed-task batches of a frozen model (any family) at fixed, pre-compiled shapes."""

    def __init__(
        self,
        config: T5Config,
        params: dict,
        vocab,
        *,
        batch_buckets: Sequence[int],
        length_buckets: Sequence[int],
        targets_length: int,
        mesh=None,
        rules=partitioning.DEFAULT_RULES,
    ):
        self.config, self.vocab = config, vocab
        self.batch_buckets = tuple(sorted(batch_buckets))
        self.length_buckets = tuple(sorted(length_buckets))
        self.targets_length = targets_length
        self.mesh, self.rules = mesh, rules
        if mesh is not None:
            data = mesh.shape["data"]
            bad = [b for b in self.batch_buckets if b % data]
            if bad:
                raise ValueError(
                    f"batch buckets {bad} are not multiples of the mesh's data "
                    f"axis ({data}); use multiples of {data}."
                )
            shardings = partitioning.tree_shardings(
                family_of(config).param_shapes(config),
                family_of(config).param_axes(config),
                mesh,
                rules,
            )
            params = jax.device_put(params, shardings)
            self._batch_sharding = partitioning.batch_sharding(mesh, rules)
        self.params = params
        self.compile_seconds = 0.0  # spent in warm_up

    @property
    def max_batch(self) -> int:
        return self.batch_buckets[-1]

    @property
    def max_length(self) -> int:
        return self.length_buckets[-1]

    def _context(self):
        if self.mesh is None:
            return contextlib.nullcontext()
        stack = contextlib.ExitStack()
        stack.enter_context(jax.sharding.use_abstract_mesh(self.mesh.abstract_mesh))
        stack.enter_context(partitioning.activation_rules(self.rules))
        return stack

    def _put(self, array: np.ndarray):
        if self.mesh is None:
            return jnp.asarray(array)
        return jax.device_put(array, self._batch_sharding)

    def _arrays(self, snapshot: BankSnapshot, examples: Sequence[Example]):
        """Padded inputs of a batch: ids [B, T], prompts [B, P, H], masks, candidates and
        placements [B]."""
        batch = bucket_for(len(examples), self.batch_buckets)
        length = bucket_for(max(len(e.ids) for e in examples), self.length_buckets)
        rows = [snapshot.row(e.task) for e in examples]
        rows += [rows[0]] * (batch - len(examples))  # padding rows repeat the first task
        ids = np.zeros((batch, length), np.int32)
        ids[len(examples) :, 0] = EOS_ID  # padding rows: an empty input
        for i, example in enumerate(examples):
            ids[i, : len(example.ids)] = example.ids
        bank = snapshot.bank
        return (
            self._put(ids),
            self._put(bank.prompts[rows]),
            self._put(bank.prompt_mask[rows]),
            self._put(bank.candidates[rows]),
            self._put(bank.after_bos[rows]),
        )

    def _rank_scores(self, snapshot: BankSnapshot, examples: Sequence[Example]) -> np.ndarray:
        ids, prompts, masks, candidates, modes = self._arrays(snapshot, examples)
        with self._context():
            return np.asarray(
                score_own_candidates(
                    self.config,
                    self.params,
                    {"prompt": prompts},
                    ids,
                    candidates,
                    prompt_mask=masks,
                    prompt_mode=modes,
                )
            )

    def _greedy_tokens(self, snapshot: BankSnapshot, examples: Sequence[Example]) -> np.ndarray:
        ids, prompts, masks, _, modes = self._arrays(snapshot, examples)
        with self._context():
            return np.asarray(
                greedy_decode(
                    self.config,
                    self.params,
                    {"prompt": prompts},
                    ids,
                    self.targets_length,
                    prompt_mode=modes,
                    prompt_mask=masks,
                )
            )

    def rank(self, snapshot: BankSnapshot, examples: Sequence[Example]) -> list[Result]:
        scores = self._rank_scores(snapshot, examples)
        results = []
        for row, example in enumerate(examples):
            labels = snapshot.tasks[example.task].labels
            own = scores[row, : len(labels)]
            results.append(
                Result(
                    labels[int(np.argmax(own))], {label: float(s) for label, s in zip(labels, own)}
                )
            )
        return results

    def greedy(self, snapshot: BankSnapshot, examples: Sequence[Example]) -> list[Result]:
        tokens = self._greedy_tokens(snapshot, examples)
        return [Result(text, None) for text in decode_tokens(self.vocab, tokens[: len(examples)])]

    def run(self, snapshot: BankSnapshot, examples: Sequence[Example]) -> list[Result]:
        """Results in the order of `examples`; tasks gone from the snapshot get an error."""
        results: list[Result | None] = [None] * len(examples)
        groups: dict[str, list[int]] = {"rank": [], "greedy": []}
        for i, example in enumerate(examples):
            task = snapshot.tasks.get(example.task)
            if task is None:
                results[i] = Result("", None, f"task {example.task!r} was removed")
            else:
                groups[task.method].append(i)
        for method, indices in groups.items():
            if indices:
                run = self.rank if method == "rank" else self.greedy
                for i, result in zip(indices, run(snapshot, [examples[i] for i in indices])):
                    results[i] = result
        return results

    def warm_up(self, snapshot: BankSnapshot, methods: Sequence[str] = ("rank", "greedy")) -> float:
        """Compiles every (batch, length) bucket for `methods`; returns the seconds taken.

        Runs on a one-task dummy bank of the snapshot's shapes, so an empty bank warms up too.
        """
        start = time.perf_counter()
        bank = snapshot.bank
        dummy = BankSnapshot(
            {},
            PromptBank(
                ("warm-up",),
                np.zeros((1,) + bank.prompts.shape[1:], np.float32),
                np.ones((1,) + bank.prompt_mask.shape[1:], bool),
                np.zeros((1,), bool),
                {},
                np.ones((1,) + bank.candidates.shape[1:], np.int32),
            ),
        )
        for method in methods:
            run = self._rank_scores if method == "rank" else self._greedy_tokens
            for batch in self.batch_buckets:
                for length in self.length_buckets:
                    run(dummy, [Example("warm-up", np.ones((length,), np.int32))] * batch)
        seconds = time.perf_counter() - start
        self.compile_seconds += seconds
        logger.info(
            "compiled %d shapes for %s in %.1f s",
            len(self.batch_buckets) * len(self.length_buckets) * len(methods),
            "/".join(methods),
            seconds,
        )
        return seconds


__all__ = ["Example", "ModelRunner", "Result", "bucket_for", "default_buckets"]
