"""Inline keyboards and the callback data their buttons carry."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# A stored row id in callback data: a forged or stale button may carry any digits, and ids
# outside Postgres' BIGINT would fail the query instead of finding nothing.
StoredId = Annotated[int, Field(gt=0, le=2**63 - 1)]
