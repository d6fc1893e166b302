"""Writes the quickstart's SST-2 files (jaxprompt/assets/sst2/) from the developers' bundle.

    python tools/make_sst2_subset.py --shared ../shared --out jaxprompt/assets/sst2

SST-2's train and dev rows are mostly sub-sentence *phrases* (median 7 words), its test
rows full sentences (median 19). So that validation measures what test measures, train
and validation keep only sentence-like rows (ending in '.', '!' or '?'; 11,763 of the
60,614 train rows, 1,276 of the 6,735 dev rows, 843 of the 872 test rows): a seeded
sample of 8,000 train and 500 dev rows. Test is copied whole.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil

SENTENCE_END = (".", "!", "?")


def read_rows(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        header, *rows = f.read().splitlines()
    assert header == "sentence\tlabel", f"{path}: unexpected header {header!r}"
    return rows


def sentence_rows(rows: list[str]) -> list[str]:
    return [row for row in rows if row.split("\t")[0].strip().endswith(SENTENCE_END)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default="../shared")
    parser.add_argument("--out", default="jaxprompt/assets/sst2")
    parser.add_argument("--train", type=int, default=8000)
    parser.add_argument("--validation", type=int, default=500)
    args = parser.parse_args()
    source = os.path.join(args.shared, "data", "sst2")
    generator = random.Random(0)
    train = generator.sample(sentence_rows(read_rows(os.path.join(source, "train.tsv"))),
                             args.train)
    dev = generator.sample(sentence_rows(read_rows(os.path.join(source, "dev.tsv"))),
                           args.validation)
    os.makedirs(args.out, exist_ok=True)
    for name, rows in (("train.tsv", train), ("dev.tsv", dev)):
        with open(os.path.join(args.out, name), "w", encoding="utf-8") as f:
            f.write("sentence\tlabel\n" + "\n".join(rows) + "\n")
    shutil.copyfile(os.path.join(source, "test.tsv"), os.path.join(args.out, "test.tsv"))
    print(f"wrote {len(train)} train, {len(dev)} validation rows and the test file to {args.out}")


if __name__ == "__main__":
    main()
