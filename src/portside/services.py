"""The set of domain services one application instance uses; built once in `app.create_app`."""

from __future__ import annotations

from dataclasses import dataclass

from portside.config import Settings
from portside.content.blobs import BlobService
from portside.content.listing import ListingService
from portside.content.manifests import ManifestService
from portside.content.uploads import UploadService
from portside.metadata.database import Database
from portside.storage.ports import BlobStore


@dataclass
class Services:
    settings: Settings
    db: Database
    store: BlobStore
    blobs: BlobService
    uploads: UploadService
    manifests: ManifestService
    listing: ListingService
