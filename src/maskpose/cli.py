"""The ``maskpose`` command line (Typer). Each command is a thin wrapper over a plain function."""
from __future__ import annotations

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help=(
        "maskpose: learn 3D human pose from foreground masks alone.\n\n"
        "Pipeline: synth | prepare | import -> dataset folder -> train -> eval / predict / fit -> export."
    ),
)


@app.callback()
def _main() -> None:
    """maskpose command line."""


def main() -> None:  # pragma: no cover
    app()
