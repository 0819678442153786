"""registry, access and PMT scores

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 18:50:19.686486
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('actor', sa.String(length=60), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('action', sa.String(length=30), nullable=False),
    sa.Column('entity', sa.String(length=20), nullable=False),
    sa.Column('entity_id', sa.BigInteger(), nullable=True),
    sa.Column('district_id', sa.SmallInteger(), nullable=True),
    sa.Column('outcome', sa.String(length=10), nullable=False),
    sa.Column('detail', sa.String(length=300), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)
        batch_op.create_index('ix_audit_log_entity', ['entity', 'entity_id'], unique=False)

    op.create_table('division',
    sa.Column('id', sa.SmallInteger(), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('name_ur', sa.String(length=60), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_division')),
    sa.UniqueConstraint('name', name=op.f('uq_division_name'))
    )
    op.create_table('ingest_batch',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('reference', sa.String(length=200), nullable=False),
    sa.Column('effective_date', sa.Date(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('actor', sa.String(length=80), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ingest_batch'))
    )
    op.create_table('outbox_cursor',
    sa.Column('consumer', sa.String(length=40), nullable=False),
    sa.Column('last_event_id', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('consumer', name=op.f('pk_outbox_cursor'))
    )
    op.create_table('outbox_event',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('topic', sa.String(length=60), nullable=False),
    sa.Column('aggregate', sa.String(length=20), nullable=False),
    sa.Column('aggregate_id', sa.BigInteger(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_event'))
    )
    with op.batch_alter_table('outbox_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_event_topic'), ['topic'], unique=False)

    op.create_table('pmt_model',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('description', sa.String(length=400), nullable=False),
    sa.Column('score_floor', sa.Float(), nullable=False),
    sa.Column('score_ceiling', sa.Float(), nullable=False),
    sa.Column('created_by', sa.String(length=60), nullable=False),
    sa.Column('created_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('activated_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pmt_model'))
    )
    op.create_table('synth_truth',
    sa.Column('individual_id', sa.BigInteger(), nullable=False),
    sa.Column('person_key', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('individual_id', name=op.f('pk_synth_truth'))
    )
    with op.batch_alter_table('synth_truth', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_synth_truth_person_key'), ['person_key'], unique=False)

    op.create_table('district',
    sa.Column('id', sa.SmallInteger(), nullable=False),
    sa.Column('division_id', sa.SmallInteger(), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('name_ur', sa.String(length=60), nullable=False),
    sa.Column('population_2017_m', sa.Float(), nullable=False),
    sa.Column('urban_share', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['division_id'], ['division.id'], name=op.f('fk_district_division_id_division')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_district')),
    sa.UniqueConstraint('name', name=op.f('uq_district_name'))
    )
    op.create_table('pmt_coefficient',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('model_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.Column('region', sa.String(length=8), nullable=False),
    sa.Column('indicator', sa.String(length=40), nullable=False),
    sa.Column('level', sa.String(length=20), nullable=False),
    sa.Column('weight', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['pmt_model.id'], name=op.f('fk_pmt_coefficient_model_id_pmt_model')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pmt_coefficient'))
    )
    with op.batch_alter_table('pmt_coefficient', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pmt_coefficient_model_id'), ['model_id'], unique=False)

    op.create_table('pmt_score',
    sa.Column('model_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.Column('household_id', sa.BigInteger(), nullable=False),
    sa.Column('district_id', sa.SmallInteger(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('scored_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['pmt_model.id'], name=op.f('fk_pmt_score_model_id_pmt_model')),
    sa.PrimaryKeyConstraint('model_id', 'household_id', name=op.f('pk_pmt_score'))
    )
    with op.batch_alter_table('pmt_score', schema=None) as batch_op:
        batch_op.create_index('ix_pmt_score_model_district_score', ['model_id', 'district_id', 'score'], unique=False)

    op.create_table('value_change',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('entity', sa.String(length=12), nullable=False),
    sa.Column('entity_id', sa.BigInteger(), nullable=False),
    sa.Column('household_id', sa.BigInteger(), nullable=False),
    sa.Column('district_id', sa.SmallInteger(), nullable=False),
    sa.Column('field', sa.String(length=40), nullable=False),
    sa.Column('old_value', sa.Text(), nullable=True),
    sa.Column('new_value', sa.Text(), nullable=True),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('source_ref', sa.String(length=200), nullable=True),
    sa.Column('effective_date', sa.Date(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('actor', sa.String(length=80), nullable=False),
    sa.Column('batch_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['ingest_batch.id'], name=op.f('fk_value_change_batch_id_ingest_batch')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_value_change'))
    )
    with op.batch_alter_table('value_change', schema=None) as batch_op:
        batch_op.create_index('ix_value_change_entity', ['entity', 'entity_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_value_change_household_id'), ['household_id'], unique=False)

    op.create_table('app_user',
    sa.Column('id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=60), nullable=False),
    sa.Column('full_name', sa.String(length=120), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('district_id', sa.SmallInteger(), nullable=True),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('created_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['district_id'], ['district.id'], name=op.f('fk_app_user_district_id_district')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_app_user')),
    sa.UniqueConstraint('username', name=op.f('uq_app_user_username'))
    )
    op.create_table('tehsil',
    sa.Column('id', sa.SmallInteger(), nullable=False),
    sa.Column('district_id', sa.SmallInteger(), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.ForeignKeyConstraint(['district_id'], ['district.id'], name=op.f('fk_tehsil_district_id_district')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tehsil'))
    )
    with op.batch_alter_table('tehsil', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tehsil_district_id'), ['district_id'], unique=False)

    op.create_table('union_council',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tehsil_id', sa.SmallInteger(), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.ForeignKeyConstraint(['tehsil_id'], ['tehsil.id'], name=op.f('fk_union_council_tehsil_id_tehsil')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_union_council'))
    )
    with op.batch_alter_table('union_council', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_union_council_tehsil_id'), ['tehsil_id'], unique=False)

    op.create_table('household',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('ref', sa.String(length=40), nullable=False),
    sa.Column('district_id', sa.SmallInteger(), nullable=False),
    sa.Column('tehsil_id', sa.SmallInteger(), nullable=False),
    sa.Column('uc_id', sa.Integer(), nullable=True),
    sa.Column('urban', sa.Boolean(), nullable=False),
    sa.Column('address', sa.String(length=200), nullable=False),
    sa.Column('tenure', sa.String(length=12), nullable=False),
    sa.Column('rooms', sa.SmallInteger(), nullable=False),
    sa.Column('roof', sa.String(length=12), nullable=False),
    sa.Column('wall', sa.String(length=14), nullable=False),
    sa.Column('toilet', sa.String(length=8), nullable=False),
    sa.Column('drinking_water', sa.String(length=12), nullable=False),
    sa.Column('electricity', sa.Boolean(), nullable=False),
    sa.Column('cooking_fuel', sa.String(length=10), nullable=False),
    sa.Column('fridge', sa.Boolean(), nullable=False),
    sa.Column('freezer', sa.Boolean(), nullable=False),
    sa.Column('air_conditioner', sa.Boolean(), nullable=False),
    sa.Column('air_cooler', sa.Boolean(), nullable=False),
    sa.Column('washing_machine', sa.Boolean(), nullable=False),
    sa.Column('television', sa.Boolean(), nullable=False),
    sa.Column('motorcycle', sa.Boolean(), nullable=False),
    sa.Column('car', sa.Boolean(), nullable=False),
    sa.Column('computer', sa.Boolean(), nullable=False),
    sa.Column('land_acres', sa.Float(), nullable=False),
    sa.Column('cattle', sa.SmallInteger(), nullable=False),
    sa.Column('goats_sheep', sa.SmallInteger(), nullable=False),
    sa.Column('tractor', sa.Boolean(), nullable=False),
    sa.Column('batch_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.Column('surveyed_on', sa.Date(), nullable=False),
    sa.Column('verified_on', sa.Date(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['ingest_batch.id'], name=op.f('fk_household_batch_id_ingest_batch')),
    sa.ForeignKeyConstraint(['district_id'], ['district.id'], name=op.f('fk_household_district_id_district')),
    sa.ForeignKeyConstraint(['tehsil_id'], ['tehsil.id'], name=op.f('fk_household_tehsil_id_tehsil')),
    sa.ForeignKeyConstraint(['uc_id'], ['union_council.id'], name=op.f('fk_household_uc_id_union_council')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_household')),
    sa.UniqueConstraint('ref', name=op.f('uq_household_ref'))
    )
    with op.batch_alter_table('household', schema=None) as batch_op:
        batch_op.create_index('ix_household_district_tehsil', ['district_id', 'tehsil_id', 'id'], unique=False)

    op.create_table('household_consumption',
    sa.Column('household_id', sa.BigInteger(), nullable=False),
    sa.Column('consumption_pae', sa.Float(), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['household_id'], ['household.id'], name=op.f('fk_household_consumption_household_id_household')),
    sa.PrimaryKeyConstraint('household_id', name=op.f('pk_household_consumption'))
    )
    op.create_table('individual',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('household_id', sa.BigInteger(), nullable=False),
    sa.Column('district_id', sa.SmallInteger(), nullable=False),
    sa.Column('roster_line', sa.SmallInteger(), nullable=False),
    sa.Column('cnic', sa.String(length=13), nullable=True),
    sa.Column('id_document', sa.String(length=6), nullable=True),
    sa.Column('full_name', sa.String(length=80), nullable=False),
    sa.Column('father_husband_name', sa.String(length=80), nullable=True),
    sa.Column('sex', sa.String(length=12), nullable=False),
    sa.Column('date_of_birth', sa.Date(), nullable=False),
    sa.Column('relation_to_head', sa.String(length=16), nullable=False),
    sa.Column('marital_status', sa.String(length=14), nullable=False),
    sa.Column('disability', sa.String(length=12), nullable=False),
    sa.Column('education', sa.String(length=14), nullable=False),
    sa.Column('enrolled_in_school', sa.Boolean(), nullable=False),
    sa.Column('occupation', sa.String(length=60), nullable=True),
    sa.Column('labour_status', sa.String(length=20), nullable=False),
    sa.Column('phone', sa.String(length=13), nullable=True),
    sa.Column('date_of_death', sa.Date(), nullable=True),
    sa.Column('member_since', sa.Date(), nullable=False),
    sa.Column('batch_id', sa.BigInteger().with_variant(sa.INTEGER(), 'sqlite'), nullable=False),
    sa.Column('updated_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['ingest_batch.id'], name=op.f('fk_individual_batch_id_ingest_batch')),
    sa.ForeignKeyConstraint(['household_id'], ['household.id'], name=op.f('fk_individual_household_id_household')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_individual'))
    )
    with op.batch_alter_table('individual', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_individual_cnic'), ['cnic'], unique=False)
        batch_op.create_index(batch_op.f('ix_individual_household_id'), ['household_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('individual', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_individual_household_id'))
        batch_op.drop_index(batch_op.f('ix_individual_cnic'))

    op.drop_table('individual')
    op.drop_table('household_consumption')
    with op.batch_alter_table('household', schema=None) as batch_op:
        batch_op.drop_index('ix_household_district_tehsil')

    op.drop_table('household')
    with op.batch_alter_table('union_council', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_union_council_tehsil_id'))

    op.drop_table('union_council')
    with op.batch_alter_table('tehsil', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tehsil_district_id'))

    op.drop_table('tehsil')
    op.drop_table('app_user')
    with op.batch_alter_table('value_change', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_value_change_household_id'))
        batch_op.drop_index('ix_value_change_entity')

    op.drop_table('value_change')
    with op.batch_alter_table('pmt_score', schema=None) as batch_op:
        batch_op.drop_index('ix_pmt_score_model_district_score')

    op.drop_table('pmt_score')
    with op.batch_alter_table('pmt_coefficient', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pmt_coefficient_model_id'))

    op.drop_table('pmt_coefficient')
    op.drop_table('district')
    with op.batch_alter_table('synth_truth', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_synth_truth_person_key'))

    op.drop_table('synth_truth')
    op.drop_table('pmt_model')
    with op.batch_alter_table('outbox_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_event_topic'))

    op.drop_table('outbox_event')
    op.drop_table('outbox_cursor')
    op.drop_table('ingest_batch')
    op.drop_table('division')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_entity')
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))

    op.drop_table('audit_log')

