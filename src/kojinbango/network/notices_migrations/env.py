"""Alembic environment of the network's お知らせ tables."""

from kojinbango.common.alembic_env import run
from kojinbango.network.notices import Base

run(Base.metadata)
