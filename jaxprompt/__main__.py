"""`python -m jaxprompt ...` is the `jaxprompt` command."""

import sys

from jaxprompt.cli import run

sys.exit(run())
