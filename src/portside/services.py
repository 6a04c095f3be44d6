"""The set of domain services one process uses: built once by `app.build` from the features, then frozen."""

from __future__ import annotations

from dataclasses import dataclass

from portside.audit.recorder import AuditRecorder
from portside.auth.access import AccessService
from portside.auth.sessions import SessionService
from portside.auth.tokens import TokenService
from portside.config import Settings
from portside.content.artifacts import ArtifactService
from portside.content.blobs import BlobService
from portside.content.copy import ArtifactCopier
from portside.content.listing import ListingService
from portside.content.manifests import ManifestService
from portside.content.uploads import UploadService
from portside.jobs.queue import JobQueue
from portside.jobs.scheduler import Scheduler
from portside.lifecycle.gc import GarbageCollector
from portside.lifecycle.gc_jobs import GcService
from portside.lifecycle.immutability import ImmutabilityService
from portside.lifecycle.quotas import QuotaService
from portside.lifecycle.retention_jobs import RetentionRunner
from portside.lifecycle.retention_service import RetentionService
from portside.management.audit_log import AuditLogService
from portside.management.labels import LabelService
from portside.management.members import MemberService
from portside.management.projects import ProjectService
from portside.management.robots import RobotService
from portside.management.system import SystemService
from portside.management.users import UserService
from portside.metadata.database import Database
from portside.metadata.projects import ProjectQueries
from portside.storage.ports import BlobStore


@dataclass(frozen=True, kw_only=True)
class Services:
    settings: Settings
    db: Database
    store: BlobStore
    blobs: BlobService
    uploads: UploadService
    manifests: ManifestService
    listing: ListingService
    projects: ProjectQueries
    access: AccessService
    tokens: TokenService | None
    sessions: SessionService | None
    audit: AuditRecorder
    project_admin: ProjectService
    user_admin: UserService
    robot_admin: RobotService
    member_admin: MemberService
    system: SystemService
    audit_log: AuditLogService
    artifacts: ArtifactService
    jobs: JobQueue
    scheduler: Scheduler
    gc: GarbageCollector
    gc_admin: GcService
    quotas: QuotaService
    immutability: ImmutabilityService
    retention: RetentionService
    retention_runner: RetentionRunner
    labels: LabelService
    copier: ArtifactCopier
