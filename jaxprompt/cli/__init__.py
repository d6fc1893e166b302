"""The `jaxprompt` command line: `main.py` builds the parser, one module per command."""


def run() -> int:
    """The `jaxprompt` command's entry point: sets up the process (huge pages for XLA:CPU's
    step memory, see jaxprompt.host_memory; a re-exec) before anything imports JAX, then runs
    `main`. `main([...])` called from Python leaves the process as it is."""
    from jaxprompt.host_memory import reexec_with_malloc_tunables

    reexec_with_malloc_tunables()
    from jaxprompt.cli.main import main

    return main()
