"""Alembic environment of the network's database."""

from kojinbango.common.alembic_env import run
from kojinbango.network.models import Base

run(Base.metadata)
