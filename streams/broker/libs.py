"""Resolve the Apache Kafka broker jars with Maven into a user cache, once.

The jars are never committed: `mvn dependency:copy-dependencies` over the tiny pom beside this
file copies them into ``<cache>/kafka-<version>/libs``. A marker file written last makes the
cache all-or-nothing, so an interrupted download is simply redone.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

POM = Path(__file__).with_name("pom.xml")
_COMPLETE_MARKER = ".complete"


class BrokerLibsError(RuntimeError):
    """The broker jars could not be resolved; the message says what to do."""


def kafka_version() -> str:
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    if not match:
        raise BrokerLibsError(f"no <kafka.version> in {POM}")
    return match.group(1)


def cache_root() -> Path:
    base = os.environ.get("FSTREAMS_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base else Path.home() / ".cache"
    if not os.environ.get("FSTREAMS_CACHE_DIR"):
        root = root / "fulfillment-streams"
    return root


def libs_dir() -> Path:
    return cache_root() / f"kafka-{kafka_version()}" / "libs"


def libs_ready() -> bool:
    return (libs_dir() / _COMPLETE_MARKER).exists()


def ensure_libs(quiet: bool = False) -> tuple[Path, float]:
    """Return (libs dir, seconds spent resolving); 0.0 when the cache was already complete."""
    target = libs_dir()
    if libs_ready():
        return target, 0.0
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerLibsError(
            "Maven ('mvn') is not on PATH; install it (apt-get install maven) so the project "
            "can resolve org.apache.kafka:kafka_2.13 from Maven Central."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=target.parent))
    started = time.monotonic()
    if not quiet:
        print(f"resolving Apache Kafka {kafka_version()} jars with Maven into {target} ...")
    cmd = [
        mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise BrokerLibsError(
            "Maven could not resolve the Kafka broker jars "
            f"(exit {proc.returncode}): {proc.stdout[-2000:]} {proc.stderr[-2000:]}"
        )
    (staging / _COMPLETE_MARKER).write_text(kafka_version())
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target, time.monotonic() - started
