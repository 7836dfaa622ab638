"""Identity resolution's inputs: a source's view of one person."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.model import Source


@dataclass(frozen=True)
class CustomerRecord:
    """What one source record says about a person. Values are raw, as the source sent them.

    ``default_region`` is the ISO country used to parse phone numbers without a country
    code (the store's country). ``attributes`` carries anything else the source sent that
    guestgraph keeps (birthday, consent, lifecycle stage...).
    """

    source: Source
    external_id: str
    given_name: str | None = None
    family_name: str | None = None
    display_name: str | None = None
    email: str | None = None
    phone: str | None = None
    loyalty_id: str | None = None
    default_region: str = "US"
    observed_at: datetime | None = None
    version: int | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
