"""Alembic environment of the certificate desk (version table alembic_version_forms)."""

from kojinbango.common.alembic_env import run
from kojinbango.municipality.forms.models import Base

run(Base.metadata)
