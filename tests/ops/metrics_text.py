"""Reading a Prometheus text exposition in tests: one sample, or the sum of the matching ones."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.parser import text_string_to_metric_families


def _matching(text: str, name: str, labels: dict[str, str] | None) -> Iterator[float]:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and (labels is None or all(s.labels.get(k) == v for k, v in labels.items())):
                yield float(s.value)


def sample(text: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    """The value of the first matching sample, or None."""
    return next(_matching(text, name, labels), None)


def total(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    """The sum of every matching sample (e.g. all reasons of one outcome)."""
    return sum(_matching(text, name, labels), 0.0)
