"""Alembic environment of J-LIS's card centre and JPKI tables (version table alembic_version_cards)."""

from kojinbango.common.alembic_env import run
from kojinbango.jlis.cards.models import Base

run(Base.metadata)
