"""The ``edgewise`` command line (Typer + Rich)."""
