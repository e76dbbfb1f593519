"""`fstreams broker fetch|start|stop|status`: the embedded single-node Apache Kafka."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from streams.broker import launcher, libs
from streams.settings import Settings

app = typer.Typer(help="Run the embedded Apache Kafka broker (KRaft, single node).",
                  no_args_is_help=True)

DataDir = typer.Option(None, "--data-dir", help="broker data dir [default: <data_dir>/broker]")


def _dir(data_dir: Path | None) -> Path:
    return data_dir or Settings().data_dir / "broker"


@app.command("fetch")
def fetch() -> None:
    """Resolve the Kafka jars with Maven into the user cache (done once, then cached)."""
    try:
        path, took = libs.ensure_libs()
    except libs.BrokerLibsError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from exc
    note = f"resolved in {took:.1f}s" if took else "already cached"
    typer.echo(f"Apache Kafka {libs.kafka_version()} jars: {path} ({note})")


@app.command("start")
def start(
    port: int = typer.Option(9092, help="PLAINTEXT listener port (0 = any free port)"),
    data_dir: Path | None = DataDir,
    heap: str = typer.Option("1g", help="JVM max heap"),
) -> None:
    """Start a detached broker that keeps its data across restarts; prints the bootstrap."""
    target = _dir(data_dir)
    state = launcher.read_state(target)
    if state:
        typer.echo(f"already running: {state['bootstrap']} (pid {state['pid']})")
        return
    broker = launcher.EmbeddedKafka(data_dir=target, port=port, heap=heap, detached=True)
    t0 = time.monotonic()
    try:
        broker.start()
    except (launcher.BrokerError, libs.BrokerLibsError) as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"started {broker.bootstrap} in {time.monotonic() - t0:.1f}s; data {target}")
    typer.echo(f"export FSTREAMS_BOOTSTRAP_SERVERS={broker.bootstrap}")


@app.command("status")
def status(data_dir: Path | None = DataDir) -> None:
    """Report the running broker's bootstrap address, or exit 1 when none runs."""
    state = launcher.read_state(_dir(data_dir))
    if not state:
        typer.echo("not running")
        raise typer.Exit(1)
    healthy = launcher.metadata_ok(str(state["bootstrap"]))
    typer.echo(f"running: bootstrap={state['bootstrap']} pid={state['pid']} "
               f"{'healthy' if healthy else 'NOT answering metadata requests'}")


@app.command("stop")
def stop(data_dir: Path | None = DataDir) -> None:
    """Stop the broker: SIGTERM, then SIGKILL after 20 s. Leaves no java process behind."""
    if launcher.stop_detached(_dir(data_dir)):
        typer.echo("stopped")
    else:
        typer.echo("not running")
