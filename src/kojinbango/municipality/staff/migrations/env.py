"""Alembic environment of the staff terminal (version table alembic_version_staff)."""

from kojinbango.common.alembic_env import run
from kojinbango.municipality.staff.models import Base

run(Base.metadata)
