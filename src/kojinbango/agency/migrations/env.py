"""Alembic environment of the agency's business tables."""

from kojinbango.agency.models import Base
from kojinbango.common.alembic_env import run

run(Base.metadata)
