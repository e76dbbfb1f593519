"""`fstreams demo`: broker, registry, worker, traffic and a live console, stopped by Ctrl-C."""

from __future__ import annotations

import typer


def demo_command(
    rate: int = typer.Option(200, help="generated events per second"),
    orders: int = typer.Option(5_000, help="orders the generator will create (all stages "
                               "of their lives show within a few minutes)"),
    seed: int = typer.Option(7, help="generator seed (same seed, same traffic)"),
) -> None:
    """Run the whole product locally on the embedded Apache Kafka broker.

    Starts the broker (data kept under <data_dir>/demo), the schema registry, a worker and
    the traffic generator, then prints live progress. Ctrl-C stops everything cleanly.
    """
    from streams.demo import run_demo

    run_demo(rate=rate, orders=orders, seed=seed)
