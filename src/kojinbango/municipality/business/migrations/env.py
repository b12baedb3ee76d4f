"""Alembic environment of the business systems' tables in the municipality's database."""

from kojinbango.common.alembic_env import run
from kojinbango.municipality.business.models import Base

run(Base.metadata)
