"""Alembic environment of the 団体内統合宛名 tables in the municipality's database."""

from kojinbango.common.alembic_env import run
from kojinbango.municipality.addressee.models import Base

run(Base.metadata)
