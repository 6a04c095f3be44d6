"""The outbox table: events committed with the change they describe, waiting to be handed on."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portside.metadata.models import Base


class OutboxEvent(Base):
    __tablename__ = "event_outbox"
    # BIGINT on PostgreSQL (pulls alone can number billions); SQLite's INTEGER rowid is 64-bit anyway.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(32), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    # No foreign key: deleting a project must not take the events about it (its deletion among them).
    project_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    payload: Mapped[str] = mapped_column(Text)  # Event.to_json()
