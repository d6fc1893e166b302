"""Writes the quickstart's SST-2 files (jaxprompt/assets/sst2/) from the developers' bundle.

    python tools/make_sst2_subset.py --shared ../shared --out jaxprompt/assets/sst2

SST-2's train and dev rows are mostly sub-sentence *phrases* (median 7 words), its test
rows full sentences (median 19). So that validation measures what test measures:

- only sentence-like rows are kept (ending in '.', '!' or '?'): 13,036 distinct texts of
  the bundle's train and dev files, both carved from GLUE's train split;
- rows that are phrases of one source sentence are grouped (a row of 4 or more words inside
  another row joins its group: 6,900-odd groups, at most 9 rows each), and train and
  validation take *disjoint groups*. Splitting rows at random, as GLUE's own train/dev
  carving does, put 177 of 500 validation rows verbatim inside a training row: validation
  then rewarded memorising training sentences while test accuracy fell;
- validation is the longest row (the full sentence, 4 words or more) of 500 seeded groups,
  like test; train is a seeded sample of 8,000 rows of the other groups. Test (GLUE dev) is
  copied whole.
"""

from __future__ import annotations

import argparse
import bisect
import os
import random
import shutil

SENTENCE_END = (".", "!", "?")
MIN_LINK_WORDS = 4  # shorter rows ("a great film .") are common phrases, not one sentence's


def read_rows(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        header, *rows = f.read().splitlines()
    assert header == "sentence\tlabel", f"{path}: unexpected header {header!r}"
    return rows


def sentence_rows(rows: list[str]) -> dict[str, str]:
    """{text: label} of the rows that end like a sentence (the first label of a repeat)."""
    labelled = {}
    for row in rows:
        text, label = row.rsplit("\t", 1)
        if text.strip().endswith(SENTENCE_END):
            labelled.setdefault(text, label)
    return labelled


def source_groups(texts: list[str]) -> list[list[str]]:
    """Groups of texts that are phrases of one sentence: a text of MIN_LINK_WORDS or more
    words found inside another joins that text's group (union-find), in first-seen order."""
    joined, starts, position = "\n".join(texts), [], 0
    for text in texts:
        starts.append(position)
        position += len(text) + 1
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, text in enumerate(texts):
        if len(text.split()) < MIN_LINK_WORDS:
            continue
        at = joined.find(text)
        while at != -1:
            parent[root(i)] = root(bisect.bisect_right(starts, at) - 1)
            at = joined.find(text, at + 1)
    groups: dict[int, list[str]] = {}
    for i, text in enumerate(texts):
        groups.setdefault(root(i), []).append(text)
    return list(groups.values())


def split(
    labelled: dict[str, str], train_rows: int, validation_rows: int, seed: int = 0
) -> tuple[list[str], list[str]]:
    """(train, validation) TSV rows from disjoint source-sentence groups."""
    groups = source_groups(list(labelled))
    random.Random(seed).shuffle(groups)
    validation, rest = [], []
    for group in groups:
        sentence = max(group, key=len)
        if len(validation) < validation_rows and len(sentence.split()) >= MIN_LINK_WORDS:
            validation.append(sentence)  # the rest of its group is used nowhere
        else:
            rest.extend(group)
    train = random.Random(seed + 1).sample(rest, train_rows)
    return ([f"{t}\t{labelled[t]}" for t in train], [f"{t}\t{labelled[t]}" for t in validation])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default="../shared")
    parser.add_argument("--out", default="jaxprompt/assets/sst2")
    parser.add_argument("--train", type=int, default=8000)
    parser.add_argument("--validation", type=int, default=500)
    args = parser.parse_args()
    source = os.path.join(args.shared, "data", "sst2")
    labelled = sentence_rows(
        read_rows(os.path.join(source, "train.tsv")) + read_rows(os.path.join(source, "dev.tsv"))
    )
    train, validation = split(labelled, args.train, args.validation)
    os.makedirs(args.out, exist_ok=True)
    for name, rows in (("train.tsv", train), ("dev.tsv", validation)):
        with open(os.path.join(args.out, name), "w", encoding="utf-8") as f:
            f.write("sentence\tlabel\n" + "\n".join(rows) + "\n")
    shutil.copyfile(os.path.join(source, "test.tsv"), os.path.join(args.out, "test.tsv"))
    print(
        f"wrote {len(train)} train rows, {len(validation)} validation rows (from disjoint "
        f"source sentences) and the test file to {args.out}"
    )


if __name__ == "__main__":
    main()
