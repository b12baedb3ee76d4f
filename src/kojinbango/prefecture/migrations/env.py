"""Alembic environment of this organisation's database."""

from kojinbango.common.alembic_env import run
from kojinbango.prefecture.models import Base

run(Base.metadata)
