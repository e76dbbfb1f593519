"""`fstreams generate`: realistic order/shipment/return/settlement traffic plus its truth."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

_MIX_HELP = ("story shares, e.g. happy=0.55,split=0.1 (named stories get exactly their share, "
             "the rest is spread over the others by their defaults; see --stories)")


def _stories_table() -> str:
    from streams.generator.config import DEFAULT_MIX
    from streams.generator.scenarios import SCENARIOS

    return "\n".join(f"{name:<22} {DEFAULT_MIX[name]:>6.3f}  {sc.doc}"
                     for name, sc in SCENARIOS.items())


def generate_command(
    orders: int = typer.Option(1_000, "--orders", "-n", min=0, help="number of order stories"),
    seed: int = typer.Option(0, "--seed", "-s", help="same seed, same bytes"),
    start: str = typer.Option("2026-11-01T00:00:00Z", "--start",
                              help="first order time (ISO-8601 or epoch millis)"),
    span: str = typer.Option("1d", "--span", help="orders are placed within this: 30m, 6h, 1d"),
    mix: str | None = typer.Option(None, "--mix", help=_MIX_HELP),
    out: str | None = typer.Option(None, "--out", "-o", help="write JSON Lines here ('-' = "
                                   "stdout) instead of producing to Kafka"),
    truth: str | None = typer.Option(None, "--truth", help="write the intended ground truth "
                                     "(statuses, mismatches, SLA breaches, dead letters)"),
    bootstrap: str | None = typer.Option(None, "--bootstrap", "-b", help="Kafka bootstrap "
                                         "servers [env FSTREAMS_BOOTSTRAP_SERVERS]"),
    registry_url: str | None = typer.Option(None, "--registry-url", help="schema registry URL "
                                            "[env FSTREAMS_REGISTRY_URL]"),
    topic_prefix: str | None = typer.Option(None, "--topic-prefix", help="prefix of all topics"),
    rate: float | None = typer.Option(None, "--rate", min=0.001, help="events per second "
                                      "(live demo, with progress lines); default: flat out"),
    duplicates: float | None = typer.Option(None, "--duplicates", min=0, max=1,
                                            help="share of events delivered twice [0.015]"),
    late: float | None = typer.Option(None, "--late", min=0, max=1,
                                      help="share of events held up minutes to hours [0.03]"),
    bad: int | None = typer.Option(None, "--bad", min=0, help="bad records to inject "
                                   "[0.2% of events, at least 4; 0 = none]"),
    garbage: bool | None = typer.Option(None, "--garbage/--no-garbage", help="also inject raw "
                                        "non-Avro / wrong-magic-byte records [on for Kafka, "
                                        "off for --out]"),
    stories: bool = typer.Option(False, "--stories", help="list the stories and exit"),
) -> None:
    """Generate N orders' worth of events over a simulated time span, deterministic per seed.

    Each order follows a story modelled on real systems (Shopify/Amazon orders, WMS/3PL and
    carrier feeds, returns platforms, Stripe/Shopify Payments/Amazon/PayPal settlements):
    happy path, split shipments, cancellations, backorders, substitutions, carrier exceptions,
    returns, and money problems (short payments, duplicates, orphans, missing refunds,
    chargebacks...). Events arrive out of order, some late, some twice, a few invalid.

    Examples:

      fstreams generate -n 1000 --seed 7 --out events.jsonl --truth truth.json

      fstreams generate -n 100000 --rate 200 --seed 7      # to Kafka, paced
    """
    if stories:
        typer.echo(_stories_table())
        return
    from streams.generator import GeneratorConfig
    from streams.generator.build import Generation
    from streams.generator.config import (
        DUPLICATE_RATE,
        LATE_RATE,
        parse_duration,
        parse_mix,
        parse_time,
    )
    from streams.generator.output import (
        produce_to_kafka,
        stderr_progress,
        write_jsonl,
        write_truth,
    )

    try:
        config = GeneratorConfig(
            orders=orders, seed=seed, start_ms=parse_time(start), span_ms=parse_duration(span),
            mix=parse_mix(mix),
            duplicate_rate=DUPLICATE_RATE if duplicates is None else duplicates,
            late_rate=LATE_RATE if late is None else late, bad_records=bad,
            raw_garbage=(out is None) if garbage is None else garbage)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    generation = Generation(config)
    if out == "-":
        write_jsonl(generation, sys.stdout, rate=rate, progress=stderr_progress)
    elif out is not None:
        with Path(out).open("w", encoding="utf-8") as fh:
            write_jsonl(generation, fh, rate=rate, progress=stderr_progress)
    else:
        from streams.settings import Settings

        settings = Settings()
        produce_to_kafka(
            generation, bootstrap=bootstrap or settings.bootstrap_servers,
            registry_url=registry_url or settings.registry_url,
            topic_prefix=settings.topic_prefix if topic_prefix is None else topic_prefix,
            partitions=settings.partitions, rate=rate, progress=stderr_progress)
    if truth is not None:
        write_truth(generation.truth, Path(truth))
    counts = generation.truth.counts
    summary = {k: counts[k] for k in ("orders", "events_emitted", "valid_events", "duplicates",
                                      "bad", "out_of_order", "late")}
    typer.echo(f"[generate] done: {json.dumps(summary)}", err=True)
