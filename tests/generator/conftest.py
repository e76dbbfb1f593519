"""One generated run shared by the generator tests (generation is the slow part)."""

from __future__ import annotations

import pytest

from streams.generator import Generated, GeneratorConfig, generate

ORDERS = 1_000
SEED = 42


@pytest.fixture(scope="session")
def run() -> Generated:
    return generate(GeneratorConfig(orders=ORDERS, seed=SEED, raw_garbage=True))
