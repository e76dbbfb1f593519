"""`fstreams demo`: broker, registry, worker, traffic and a live console, stopped by Ctrl-C."""

from __future__ import annotations


def demo_command() -> None:
    """Run the whole product locally on the embedded broker."""
    from streams.demo import run_demo

    run_demo()
