"""The management room's pluggable features: labels (global and project labels, and labels on artifacts)."""

from __future__ import annotations

from portside.features import Feature, ServiceBuilder
from portside.management.labels import LabelService
from portside.metadata.labels import LabelQueries


def _install_labels(b: ServiceBuilder) -> None:
    b.add("labels", LabelService(b.db, LabelQueries(b.db)))


# Its routers go before the core's: the artifacts router takes a repository name as a `:path`.
LABELS = Feature("labels", install=_install_labels, routers=("portside.api.artifact_labels", "portside.api.labels"))
