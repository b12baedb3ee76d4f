"""Alembic environment of push notices (version table alembic_version_outreach)."""

from kojinbango.common.alembic_env import run
from kojinbango.municipality.outreach.models import Base

run(Base.metadata)
