"""`fstreams`: one command, a subcommand per job. Each subcommand lives in its own module."""

from __future__ import annotations

import typer

from streams.cli import alerts, broker, config, demo, dlq, generate, produce, replay, worker

app = typer.Typer(
    name="fstreams",
    help="fulfillment-streams: canonical order states, reconciliation and SLA alerts "
    "from order, shipment, return and settlement streams.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help texts are docstrings wrapped at 100 columns: Markdown reflows their paragraphs to
    # the terminal instead of keeping each source line break (ragged text at 80 columns).
    rich_markup_mode="markdown",
)
app.add_typer(broker.app, name="broker")
app.add_typer(config.app, name="config")
app.command("worker")(worker.worker_command)
app.command("demo")(demo.demo_command)
app.command("produce")(produce.produce_command)
app.add_typer(dlq.app, name="dlq")
app.add_typer(alerts.app, name="alerts")
app.command("replay")(replay.replay_command)
app.command("generate")(generate.generate_command)

try:  # the registry ships as its own package; the CLI offers it when it is installed
    from registry.cli import registry_command
except ImportError:  # pragma: no cover - registry package absent
    registry_command = None
if registry_command is not None:
    app.command("registry")(registry_command)


def main() -> None:
    app()
