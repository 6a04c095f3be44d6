"""labels and the labels on artifacts

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 18:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('labels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('color', sa.String(length=32), nullable=False),
    sa.Column('scope', sa.String(length=1), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_labels_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_labels')),
    sa.UniqueConstraint('name', 'project_id', name=op.f('uq_labels_name_project_id')),
    sqlite_autoincrement=True
    )
    op.create_index('uq_labels_global_name', 'labels', ['name'], unique=True,
                    sqlite_where=sa.text('project_id IS NULL'), postgresql_where=sa.text('project_id IS NULL'))
    op.create_table('artifact_labels',
    sa.Column('manifest_id', sa.Integer(), nullable=False),
    sa.Column('label_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['label_id'], ['labels.id'], name=op.f('fk_artifact_labels_label_id_labels'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['manifest_id'], ['manifests.id'], name=op.f('fk_artifact_labels_manifest_id_manifests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('manifest_id', 'label_id', name=op.f('pk_artifact_labels'))
    )
    with op.batch_alter_table('artifact_labels', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_artifact_labels_label_id'), ['label_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('artifact_labels', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_artifact_labels_label_id'))
    op.drop_table('artifact_labels')
    op.drop_index('uq_labels_global_name', table_name='labels')
    op.drop_table('labels')
