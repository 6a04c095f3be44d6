"""indexes for the SQL listings: a page of a project's audit log or a repository's artifacts, newest
first, walks an index instead of sorting every row

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 19:50:00
"""

from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_audit_logs_project_id_op_time', 'audit_logs', ['project_id', 'op_time'], unique=False)
    op.create_index('ix_manifests_repository_id_pushed_at', 'manifests', ['repository_id', 'pushed_at'], unique=False)
    op.create_index('ix_manifests_pushed_at', 'manifests', ['pushed_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_manifests_pushed_at', table_name='manifests')
    op.drop_index('ix_manifests_repository_id_pushed_at', table_name='manifests')
    op.drop_index('ix_audit_logs_project_id_op_time', table_name='audit_logs')
