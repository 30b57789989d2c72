"""Placeholder until the selectors module lands (replaced by the real one on merge)."""

from __future__ import annotations

from typing import Any


def placement_selectors(text: str, part: str, rules: Any) -> dict[int, str | None]:
    return {}
