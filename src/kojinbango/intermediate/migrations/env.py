"""Alembic environment of the intermediate server's tables."""

from kojinbango.common.alembic_env import run
from kojinbango.intermediate.models import Base

run(Base.metadata)
