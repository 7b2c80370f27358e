"""autolabel: models, versions, pre-label runs, pre-labels; annotations.prelabel_run_id

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 04:00:00.000000
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
Json = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')
NOW = sa.text('(CURRENT_TIMESTAMP)')


def upgrade() -> None:
    op.create_table('autolabel_models',
    sa.Column('id', BigId, nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('task', sa.String(length=16), nullable=False),
    sa.Column('dataset_id', BigId, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=NOW, nullable=False),
    sa.CheckConstraint("task IN ('category', 'multilabel', 'boxes', 'keypoints')", name=op.f('ck_autolabel_models_task')),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_autolabel_models_dataset_id_datasets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_autolabel_models')),
    sa.UniqueConstraint('name', name=op.f('uq_autolabel_models_name'))
    )
    with op.batch_alter_table('autolabel_models', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_autolabel_models_dataset_id'), ['dataset_id'], unique=False)

    op.create_table('autolabel_versions',
    sa.Column('id', BigId, nullable=False),
    sa.Column('model_id', BigId, nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=500), nullable=False),
    sa.Column('trained_on', Json, nullable=False),
    sa.Column('card', Json, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=NOW, nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['autolabel_models.id'], name=op.f('fk_autolabel_versions_model_id_autolabel_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_autolabel_versions')),
    sa.UniqueConstraint('model_id', 'version', name=op.f('uq_autolabel_versions_model_id_version'))
    )

    op.create_table('prelabel_runs',
    sa.Column('id', BigId, nullable=False),
    sa.Column('version_id', BigId, nullable=False),
    sa.Column('dataset_id', BigId, nullable=False),
    sa.Column('split', sa.String(length=200), nullable=True),
    sa.Column('summary', Json, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=NOW, nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_prelabel_runs_dataset_id_datasets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['autolabel_versions.id'], name=op.f('fk_prelabel_runs_version_id_autolabel_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prelabel_runs'))
    )
    with op.batch_alter_table('prelabel_runs', schema=None) as batch_op:
        batch_op.create_index('ix_prelabel_runs_dataset_id_id', ['dataset_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_prelabel_runs_version_id'), ['version_id'], unique=False)

    op.create_table('prelabels',
    sa.Column('run_id', BigId, nullable=False),
    sa.Column('asset_id', BigId, nullable=False),
    sa.Column('uncertainty', sa.Float(), nullable=False),
    sa.Column('expected_error', sa.Float(), nullable=False),
    sa.Column('bucket', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.CheckConstraint("bucket IN ('easy', 'medium', 'hard')", name=op.f('ck_prelabels_bucket')),
    sa.CheckConstraint("status IN ('pending', 'accepted', 'edited', 'rejected')", name=op.f('ck_prelabels_status')),
    sa.ForeignKeyConstraint(['asset_id'], ['assets.id'], name=op.f('fk_prelabels_asset_id_assets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['prelabel_runs.id'], name=op.f('fk_prelabels_run_id_prelabel_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'asset_id', name=op.f('pk_prelabels'))
    )
    with op.batch_alter_table('prelabels', schema=None) as batch_op:
        batch_op.create_index('ix_prelabels_asset_id_status', ['asset_id', 'status'], unique=False)
        batch_op.create_index('ix_prelabels_run_id_status_uncertainty_asset_id', ['run_id', 'status', 'uncertainty', 'asset_id'], unique=False)

    # A plain ADD COLUMN (no foreign key), so SQLite does not rebuild the annotations table.
    op.add_column('annotations', sa.Column('prelabel_run_id', sa.BigInteger(), nullable=True))
    op.create_index(op.f('ix_annotations_prelabel_run_id'), 'annotations', ['prelabel_run_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_annotations_prelabel_run_id'), table_name='annotations')
    with op.batch_alter_table('annotations', schema=None) as batch_op:
        batch_op.drop_column('prelabel_run_id')
    with op.batch_alter_table('prelabels', schema=None) as batch_op:
        batch_op.drop_index('ix_prelabels_run_id_status_uncertainty_asset_id')
        batch_op.drop_index('ix_prelabels_asset_id_status')
    op.drop_table('prelabels')
    with op.batch_alter_table('prelabel_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_prelabel_runs_version_id'))
        batch_op.drop_index('ix_prelabel_runs_dataset_id_id')
    op.drop_table('prelabel_runs')
    op.drop_table('autolabel_versions')
    with op.batch_alter_table('autolabel_models', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_autolabel_models_dataset_id'))
    op.drop_table('autolabel_models')
