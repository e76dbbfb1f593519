"""`fstreams replay`: recompute order state and canonical states in bulk, off the live path."""

from __future__ import annotations

from datetime import datetime

import typer

from streams.settings import Settings


def _start(value: str) -> str:
    if value in ("beginning", "committed"):
        return value
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(
            "use 'beginning', 'committed' or an ISO-8601 time such as 2026-11-01T00:00:00Z"
        ) from exc
    return str(int(stamp.timestamp() * 1000))


def replay_command(
    start: str = typer.Option("committed", "--from",
                              help="'beginning', 'committed' (the live group's offsets) or an "
                                   "ISO-8601 time (offsets by record timestamp)"),
    rebuild: bool = typer.Option(False, "--rebuild",
                                 help="start from empty state at the beginning (after a rule "
                                      "fix); orders that no longer exist are tombstoned"),
    dry_run: bool = typer.Option(False, "--dry-run", help="compute and report; write nothing"),
    force: bool = typer.Option(False, "--force",
                               help="skip the check that no live worker is in the group"),
    bootstrap: str | None = typer.Option(None, "--bootstrap", "-b", help="Kafka bootstrap"),
    registry_url: str | None = typer.Option(None, "--registry-url", help="schema registry URL"),
    jobs: int | None = typer.Option(
        None, "--jobs", "-j", min=0,
        help="processes to split the partitions over (default FSTREAMS_REPLAY_JOBS, 0: one per "
             "CPU, at most one per partition, one for replays under 50,000 events); 1 replays "
             "in this process"),
) -> None:
    """Replay the input topics through the fold in bulk (confluent-kafka batch loop).

    STOP OR PAUSE THE LIVE WORKERS FIRST: replay writes the order table's changelog and then
    commits the workers' consumer-group offsets, so restarted workers recover the recomputed
    state and continue live from where the replay ended. Replaying over existing state is
    safe: events are deduplicated by event_id and unchanged orders emit nothing.

    Partitions are independent, so they are replayed in parallel processes (--jobs); offsets
    are committed only once every process has handed its partitions over. A failed job,
    Ctrl-C or SIGTERM stops them all and commits nothing (exit code 1, 130 or 143).
    """
    from streams.replay import (
        Replayer,
        ReplayFailed,
        ReplayInterrupted,
        ReplayPlan,
        ReplayRefused,
        ReplaySummary,
    )

    overrides = {k: v for k, v in {"bootstrap_servers": bootstrap,
                                   "registry_url": registry_url}.items() if v}
    settings = Settings(**overrides)
    last = [0.0]

    def progress(summary: ReplaySummary) -> None:
        if summary.seconds - last[0] >= 2.0:
            last[0] = summary.seconds
            typer.echo(f"  {summary.events:,} events, {summary.states_emitted:,} states, "
                       f"{summary.events_per_second:,.0f} events/s", err=True)

    replayer = Replayer(settings, progress=progress, jobs=jobs)
    try:
        summary = replayer.run(ReplayPlan(start=_start(start), rebuild=rebuild,
                                          dry_run=dry_run, force=force))
    except ReplayRefused as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from exc
    except ReplayFailed as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from exc
    except (KeyboardInterrupt, ReplayInterrupted) as exc:
        signal = "SIGTERM" if isinstance(exc, ReplayInterrupted) else "Ctrl-C"
        typer.secho(f"replay stopped by {signal}; nothing committed", fg="red", err=True)
        raise typer.Exit(143 if isinstance(exc, ReplayInterrupted) else 130) from exc
    finally:
        replayer.close()
    typer.echo(summary.render())
    if not dry_run:
        typer.echo("committed the live group's offsets; start the workers to continue live")
