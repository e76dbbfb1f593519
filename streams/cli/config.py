"""`fstreams config show`: the effective settings, secrets masked."""

from __future__ import annotations

import json

import typer

from streams.settings import Settings

app = typer.Typer(help="Inspect configuration (env FSTREAMS_*, fstreams.toml).",
                  no_args_is_help=True)


@app.command("show")
def show(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Print the effective settings: defaults < fstreams.toml < FSTREAMS_* environment."""
    values = Settings().masked()
    if as_json:
        typer.echo(json.dumps(values, indent=2))
        return
    width = max(len(k) for k in values)
    for key, value in values.items():
        typer.echo(f"{key:<{width}}  {value}")
