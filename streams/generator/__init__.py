"""Realistic traffic for the four input streams, with the ground truth it intends.

    from streams.generator import GeneratorConfig, generate
    out = generate(GeneratorConfig(orders=1_000, seed=7))
    out.events  # list[GeneratedEvent] in arrival order; out.truth: Truth

    gen = Generation(config)  # the same events, lazily (bounded start-up for big runs)
    for event in gen: ...
    gen.truth
"""

from streams.generator.build import Generated, Generation, generate
from streams.generator.config import DEFAULT_MIX, GeneratorConfig, parse_duration, parse_mix
from streams.generator.emit import GeneratedEvent
from streams.generator.truth import Truth

__all__ = [
    "DEFAULT_MIX",
    "Generated",
    "GeneratedEvent",
    "Generation",
    "GeneratorConfig",
    "Truth",
    "generate",
    "parse_duration",
    "parse_mix",
]
