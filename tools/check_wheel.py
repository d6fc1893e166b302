"""Builds jaxprompt's wheel, installs it (no dependencies) into a fresh folder, and resolves
`runs/prompt_tuning.gin` and the XXL run files from that install, outside the repository.

    python tools/check_wheel.py      # exit 0: the wheel ships the gin files
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
CHECK = """
import jaxprompt.cli.configure as c, os, sys
assert "site" in c.__file__ or os.environ["TARGET"] in c.__file__, c.__file__
for name in ("runs/prompt_tuning.gin", "runs/paper_xxl_v5e_8.gin", "runs/paper_xxl_v4_8.gin",
             "runs/paper_xxl_v3_32.gin", "models/t5_1_1_lm100k_xxl.gin"):
    path = c.resolve_gin_file(name)
    assert path.startswith(os.environ["TARGET"]), path
    print("resolved", name, "->", path)
c.parse_gin(["runs/paper_xxl_v5e_8.gin"], ["train.model = 't5_1_1_lm100k_xxl'"])
print("parsed runs/paper_xxl_v5e_8.gin (and its includes) from the installed wheel")
"""


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "-q",
                "--no-deps",
                "--no-build-isolation",
                "-w",
                str(tmp / "dist"),
                str(REPO),
            ],
            check=True,
        )
        wheel = next((tmp / "dist").glob("jaxprompt-*.whl"))
        target = tmp / "site"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--target",
                str(target),
                str(wheel),
            ],
            check=True,
        )
        done = subprocess.run(
            [sys.executable, "-c", CHECK],
            cwd=tmp,
            text=True,
            env={"PYTHONPATH": str(target), "TARGET": str(target), "PATH": "/usr/bin:/bin"},
        )
        return done.returncode


if __name__ == "__main__":
    sys.exit(main())
