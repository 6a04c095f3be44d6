"""Tables. Manifest bytes live here (they are small and must change atomically with tags);
layer and config bytes live in the blob store, named by digest.

    repositories ─┬─ repository_blobs ── blobs
                  ├─ manifests ─┬─ manifest_references  (blobs and child manifests it names)
                  │             └─ subject_digest       (referrers API)
                  ├─ tags ── manifests
                  └─ uploads (by repository name; the repository may not exist yet)
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Repository(Base):
    __tablename__ = "repositories"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    pull_count: Mapped[int] = mapped_column(BigInteger, default=0)


class Blob(Base):
    __tablename__ = "blobs"
    digest: Mapped[str] = mapped_column(String(160), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RepositoryBlob(Base):
    __tablename__ = "repository_blobs"
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True)
    digest: Mapped[str] = mapped_column(ForeignKey("blobs.digest"), primary_key=True)
    linked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    __table_args__ = (Index("ix_repository_blobs_digest", "digest"),)


class Manifest(Base):
    __tablename__ = "manifests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    digest: Mapped[str] = mapped_column(String(160))
    media_type: Mapped[str] = mapped_column(String(255))
    artifact_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    subject_digest: Mapped[str | None] = mapped_column(String(160), nullable=True)
    annotations: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON, for referrers
    size: Mapped[int] = mapped_column(BigInteger)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    pushed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    pulled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    __table_args__ = (
        UniqueConstraint("repository_id", "digest"),
        Index("ix_manifests_repository_id_subject_digest", "repository_id", "subject_digest"),
    )


class ManifestReference(Base):
    """What a manifest names: `blob` rows for config and layers, `manifest` rows for index children."""

    __tablename__ = "manifest_references"
    manifest_id: Mapped[int] = mapped_column(ForeignKey("manifests.id", ondelete="CASCADE"), primary_key=True)
    digest: Mapped[str] = mapped_column(String(160), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    __table_args__ = (Index("ix_manifest_references_digest", "digest"),)


class Tag(Base):
    __tablename__ = "tags"
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    manifest_id: Mapped[int] = mapped_column(ForeignKey("manifests.id", ondelete="CASCADE"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    __table_args__ = (Index("ix_tags_manifest_id", "manifest_id"),)


class Upload(Base):
    __tablename__ = "uploads"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    repository: Mapped[str] = mapped_column(String(255))
    algorithm: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
