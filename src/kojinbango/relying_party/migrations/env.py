"""Alembic environment of the bank's database."""

from kojinbango.common.alembic_env import run
from kojinbango.relying_party.models import Base

run(Base.metadata)
