"""``python -m pfd`` is the ``pfd`` command."""

from pfd.cli.main import app

app()
