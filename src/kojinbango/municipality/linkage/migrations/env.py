"""Alembic environment of the municipality's information-linkage tables."""

from kojinbango.common.alembic_env import run
from kojinbango.municipality.linkage.models import Base

run(Base.metadata)
