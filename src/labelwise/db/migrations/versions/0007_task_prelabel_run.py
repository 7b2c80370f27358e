"""task_annotations.prelabel_run_id: the Auto-Label run a task's model label came from

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 07:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (no foreign key, like annotations.prelabel_run_id), so SQLite does
    # not rebuild the table.
    op.add_column('task_annotations', sa.Column('prelabel_run_id', sa.BigInteger(), nullable=True))
    # Labels copied before this column existed: the run whose model annotation on the same
    # image has the same confidence (the rule that matched them until now).
    op.execute(sa.text(
        "UPDATE task_annotations SET prelabel_run_id = ("
        " SELECT MAX(a.prelabel_run_id) FROM annotations a JOIN tasks t"
        " ON t.asset_id = a.asset_id"
        " WHERE t.id = task_annotations.task_id AND a.source = 'model'"
        " AND a.confidence = task_annotations.confidence)"
        " WHERE model_fingerprint IS NOT NULL"
    ))


def downgrade() -> None:
    with op.batch_alter_table('task_annotations', schema=None) as batch_op:
        batch_op.drop_column('prelabel_run_id')
