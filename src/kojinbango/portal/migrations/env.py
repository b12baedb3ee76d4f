"""Alembic environment of the portal's database."""

from kojinbango.common.alembic_env import run
from kojinbango.portal.models import Base

run(Base.metadata)
