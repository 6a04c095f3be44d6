"""upload sessions move from the database to the blob store

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 09:40:00

A session is now a small file beside its upload's bytes, so opening an upload needs no database
write. Uploads still open when this runs lose their session and are answered as unknown; clients
start them over, and the purge of old uploads removes their bytes.
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table('uploads')


def downgrade() -> None:
    op.create_table('uploads',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('repository', sa.String(length=255), nullable=False),
    sa.Column('algorithm', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_uploads'))
    )
