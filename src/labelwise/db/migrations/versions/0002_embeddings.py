"""embeddings: shards of vectors in the blob store and the (content, model, size) -> row map

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 10:00:00.000000
"""

from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('embedding_shards',
    sa.Column('id', BigId, nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('storage_key', sa.String(length=300), nullable=False),
    sa.Column('num_rows', sa.Integer(), nullable=False),
    sa.Column('dim', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_embedding_shards'))
    )
    with op.batch_alter_table('embedding_shards', schema=None) as batch_op:
        batch_op.create_index('ix_embedding_shards_model_size', ['model', 'size'], unique=False)

    op.create_table('embeddings',
    sa.Column('id', BigId, nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('object_key', sa.String(length=64), nullable=False),
    sa.Column('shard_id', BigId, nullable=False),
    sa.Column('row_index', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['shard_id'], ['embedding_shards.id'], name=op.f('fk_embeddings_shard_id_embedding_shards'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_embeddings')),
    sa.UniqueConstraint('content_hash', 'model', 'size', 'object_key', name=op.f('uq_embeddings_content_hash_model_size_object_key'))
    )
    with op.batch_alter_table('embeddings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_embeddings_shard_id'), ['shard_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('embeddings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_embeddings_shard_id'))

    op.drop_table('embeddings')
    with op.batch_alter_table('embedding_shards', schema=None) as batch_op:
        batch_op.drop_index('ix_embedding_shards_model_size')

    op.drop_table('embedding_shards')
