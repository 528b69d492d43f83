"""The ``pfd`` command line: one module per command, thin, lazy imports."""
