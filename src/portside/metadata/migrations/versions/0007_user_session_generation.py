"""users.session_generation: portal sessions end when it changes

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 18:40:00

Sessions issued before this revision name users by name and carry no generation; they are refused,
and their users sign in again.
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_generation', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_generation')
