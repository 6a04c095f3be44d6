"""Every table Portside has: the metadata adapter's and those the feature rooms declare beside their
code. Migrations and the schema test import this, so a room's tables are never left out."""

from __future__ import annotations

from importlib import import_module

from sqlalchemy import MetaData

from portside.metadata.models import Base

# A room with tables of its own lists its models module here.
ROOM_MODELS = ("portside.events.models",)


def all_tables() -> MetaData:
    for module in ROOM_MODELS:
        import_module(module)
    return Base.metadata
