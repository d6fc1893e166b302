"""Baselines without training: a fixed text template (zero-shot) and k demonstrations
in the input (few-shot), evaluated by the same evaluator as soft prompts.

Input format (documented, and tested exactly):
    "{hard_prompt} {demo_1 inputs} {demo_1 targets} ... {demo_k inputs} {demo_k targets} {inputs}"
with empty parts left out and single spaces between parts.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from jaxprompt.data.tasks import TextTask


def build_input(inputs: str, hard_prompt: str = "", demonstrations: Sequence[dict] = ()) -> str:
    parts = [hard_prompt.strip()]
    parts += [f"{d['inputs']} {d['targets']}" for d in demonstrations]
    parts.append(inputs)
    return " ".join(part for part in parts if part)


def sample_demonstrations(examples: Sequence[dict], shots: int, seed: int = 0) -> list[dict]:
    """`shots` distinct examples drawn with a seeded generator (the same every run)."""
    if shots <= 0:
        return []
    if shots > len(examples):
        raise ValueError(f"{shots} shots requested but the split has {len(examples)} examples.")
    order = np.random.default_rng(seed).permutation(len(examples))[:shots]
    return [examples[i] for i in order]


def with_hard_prompt(
    task: TextTask,
    hard_prompt: str = "",
    shots: int = 0,
    seed: int = 0,
    demonstration_split: str = "train",
) -> TextTask:
    """A copy of `task` whose inputs carry the hard prompt and k demonstrations.

    Demonstrations come from `demonstration_split` (never the evaluated split).
    """
    demonstrations = (
        sample_demonstrations(task.examples(demonstration_split), shots, seed) if shots else []
    )

    def load(split: str) -> list[dict]:
        if shots and split == demonstration_split:
            raise ValueError("Evaluate few-shot on another split than the demonstrations'.")
        return [
            dict(e, inputs=build_input(e["inputs"], hard_prompt, demonstrations))
            for e in task.examples(split)
        ]

    suffix = f"_hard{'_%dshot' % shots if shots else ''}"
    return dataclasses.replace(task, name=task.name + suffix, load=load)
