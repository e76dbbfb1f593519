"""Command line: ``fstreams registry`` (registered by the main CLI) and ``python -m registry``.

Each option defaults to the value in ``registry/settings.py`` and can be set through its
``FSTREAMS_REGISTRY_*`` environment variable; an explicit option wins over both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from registry.settings import ENV_PREFIX, RegistrySettings

# Field defaults only: model_construct() neither validates nor reads the environment (typer
# reads the environment variables itself, so an explicit option still wins).
DEFAULTS = RegistrySettings.model_construct()


def _env(name: str) -> str:
    return f"{ENV_PREFIX}{name.upper()}"


def registry_command(
    host: Annotated[
        str, typer.Option(envvar=_env("host"), help="Interface to listen on.")
    ] = DEFAULTS.host,
    port: Annotated[
        int, typer.Option(envvar=_env("port"), help="HTTP port (0: any free port).")
    ] = DEFAULTS.port,
    bootstrap_servers: Annotated[
        str, typer.Option(envvar=_env("bootstrap_servers"), help="Kafka bootstrap servers.")
    ] = DEFAULTS.bootstrap_servers,
    topic: Annotated[
        str, typer.Option(envvar=_env("topic"), help="Compacted topic holding the registry.")
    ] = DEFAULTS.topic,
    group_id: Annotated[
        str | None,
        typer.Option(envvar=_env("group_id"), help="Writer-election group (default: from topic)."),
    ] = DEFAULTS.group_id,
    advertised_url: Annotated[
        str | None,
        typer.Option(
            envvar=_env("advertised_url"),
            help="URL other instances use to reach this one (default: http://HOST:PORT).",
        ),
    ] = DEFAULTS.advertised_url,
    auth_file: Annotated[
        Path | None,
        typer.Option(
            envvar=_env("auth_file"),
            help="JSON users file (bcrypt hashes, roles read-only/read-write); enables basic auth.",
        ),
    ] = DEFAULTS.auth_file,
    leader_eligible: Annotated[
        bool,
        typer.Option(envvar=_env("leader_eligible"), help="May this instance become the writer."),
    ] = DEFAULTS.leader_eligible,
    log_level: Annotated[
        str, typer.Option(envvar=_env("log_level"), help="DEBUG, INFO, WARNING or ERROR.")
    ] = DEFAULTS.log_level,
) -> None:
    """Run the Confluent-compatible Avro schema registry.

    It stores subjects, versions, ids and settings in a compacted Kafka topic and serves the
    schema registry REST API (application/vnd.schemaregistry.v1+json). Run several instances
    on one topic for availability: they elect one writer and forward writes to it. Stop it with
    Ctrl-C or SIGTERM.
    """
    from registry.server import run

    try:
        settings = RegistrySettings(
            host=host, port=port, bootstrap_servers=bootstrap_servers, topic=topic,
            group_id=group_id, advertised_url=advertised_url, auth_file=auth_file,
            leader_eligible=leader_eligible, log_level=log_level,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise typer.BadParameter(problems) from None
    run(settings)


def main() -> None:
    typer.run(registry_command)
