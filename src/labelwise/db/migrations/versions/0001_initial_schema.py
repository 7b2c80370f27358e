"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-21 22:22:33.714327
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('label_schemas',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('multi_label', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_label_schemas'))
    )
    op.create_table('datasets',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('schema_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('info', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['schema_id'], ['label_schemas.id'], name=op.f('fk_datasets_schema_id_label_schemas')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_datasets')),
    sa.UniqueConstraint('name', name=op.f('uq_datasets_name'))
    )
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_datasets_schema_id'), ['schema_id'], unique=False)

    op.create_table('label_classes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('schema_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('tool', sa.String(length=16), nullable=True),
    sa.Column('color', sa.String(length=16), nullable=False),
    sa.Column('skeleton', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('supercategory', sa.String(length=200), nullable=True),
    sa.Column('external_id', sa.BigInteger(), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['schema_id'], ['label_schemas.id'], name=op.f('fk_label_classes_schema_id_label_schemas'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_label_classes')),
    sa.UniqueConstraint('schema_id', 'kind', 'name', name=op.f('uq_label_classes_schema_id_kind_name'))
    )
    with op.batch_alter_table('label_classes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_label_classes_schema_id'), ['schema_id'], unique=False)

    op.create_table('assets',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('dataset_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('path', sa.String(length=1024), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('format', sa.String(length=16), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('metadata', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_assets_dataset_id_datasets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assets')),
    sa.UniqueConstraint('dataset_id', 'path', name=op.f('uq_assets_dataset_id_path'))
    )
    with op.batch_alter_table('assets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_assets_content_hash'), ['content_hash'], unique=False)
        batch_op.create_index('ix_assets_dataset_id_id', ['dataset_id', 'id'], unique=False)

    op.create_table('imports',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('dataset_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('format', sa.String(length=32), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('counts', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_imports_dataset_id_datasets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_imports'))
    )
    with op.batch_alter_table('imports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_imports_dataset_id'), ['dataset_id'], unique=False)

    op.create_table('splits',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('dataset_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('info', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_splits_dataset_id_datasets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_splits')),
    sa.UniqueConstraint('dataset_id', 'name', name=op.f('uq_splits_dataset_id_name'))
    )
    op.create_table('annotations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('dataset_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('asset_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('class_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('bbox_x', sa.Float(), nullable=True),
    sa.Column('bbox_y', sa.Float(), nullable=True),
    sa.Column('bbox_w', sa.Float(), nullable=True),
    sa.Column('bbox_h', sa.Float(), nullable=True),
    sa.Column('polygons', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('rle', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('keypoints', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('attributes', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('iscrowd', sa.Boolean(), nullable=False),
    sa.Column('area', sa.Float(), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('fingerprint', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['asset_id'], ['assets.id'], name=op.f('fk_annotations_asset_id_assets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['class_id'], ['label_classes.id'], name=op.f('fk_annotations_class_id_label_classes')),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_annotations_dataset_id_datasets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_annotations'))
    )
    with op.batch_alter_table('annotations', schema=None) as batch_op:
        batch_op.create_index('ix_annotations_asset_id_fingerprint', ['asset_id', 'fingerprint'], unique=False)
        batch_op.create_index('ix_annotations_dataset_id_class_id', ['dataset_id', 'class_id'], unique=False)
        batch_op.create_index('ix_annotations_dataset_id_id', ['dataset_id', 'id'], unique=False)

    op.create_table('asset_tags',
    sa.Column('asset_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tag', sa.String(length=200), nullable=False),
    sa.Column('dataset_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['asset_id'], ['assets.id'], name=op.f('fk_asset_tags_asset_id_assets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_asset_tags_dataset_id_datasets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('asset_id', 'tag', name=op.f('pk_asset_tags'))
    )
    with op.batch_alter_table('asset_tags', schema=None) as batch_op:
        batch_op.create_index('ix_asset_tags_dataset_id_tag_asset_id', ['dataset_id', 'tag', 'asset_id'], unique=False)

    op.create_table('exports',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('dataset_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('split_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('format', sa.String(length=32), nullable=False),
    sa.Column('storage_key', sa.String(length=300), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('num_assets', sa.Integer(), nullable=False),
    sa.Column('num_annotations', sa.BigInteger(), nullable=False),
    sa.Column('options', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_exports_dataset_id_datasets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['split_id'], ['splits.id'], name=op.f('fk_exports_split_id_splits'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exports'))
    )
    with op.batch_alter_table('exports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exports_dataset_id'), ['dataset_id'], unique=False)

    op.create_table('split_assets',
    sa.Column('split_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('asset_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['asset_id'], ['assets.id'], name=op.f('fk_split_assets_asset_id_assets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['split_id'], ['splits.id'], name=op.f('fk_split_assets_split_id_splits'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('split_id', 'asset_id', name=op.f('pk_split_assets'))
    )
    with op.batch_alter_table('split_assets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_split_assets_asset_id'), ['asset_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('split_assets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_split_assets_asset_id'))

    op.drop_table('split_assets')
    with op.batch_alter_table('exports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exports_dataset_id'))

    op.drop_table('exports')
    with op.batch_alter_table('asset_tags', schema=None) as batch_op:
        batch_op.drop_index('ix_asset_tags_dataset_id_tag_asset_id')

    op.drop_table('asset_tags')
    with op.batch_alter_table('annotations', schema=None) as batch_op:
        batch_op.drop_index('ix_annotations_dataset_id_id')
        batch_op.drop_index('ix_annotations_dataset_id_class_id')
        batch_op.drop_index('ix_annotations_asset_id_fingerprint')

    op.drop_table('annotations')
    op.drop_table('splits')
    with op.batch_alter_table('imports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_imports_dataset_id'))

    op.drop_table('imports')
    with op.batch_alter_table('assets', schema=None) as batch_op:
        batch_op.drop_index('ix_assets_dataset_id_id')
        batch_op.drop_index(batch_op.f('ix_assets_content_hash'))

    op.drop_table('assets')
    with op.batch_alter_table('label_classes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_label_classes_schema_id'))

    op.drop_table('label_classes')
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_datasets_schema_id'))

    op.drop_table('datasets')
    op.drop_table('label_schemas')

