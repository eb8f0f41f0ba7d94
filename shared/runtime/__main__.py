"""``python -m runtime`` is the ``runtime`` command line."""

from runtime.cli import main

main()
