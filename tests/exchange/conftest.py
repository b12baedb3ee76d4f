"""Fixtures for information linkage: a running nation where a family moved from the first
municipality to the second, with business data, 符号 and 副本 everywhere (``linkage_setup``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kojinbango import demo, linkage_setup
from kojinbango.domain.jst import today_jst
from kojinbango.nation import Nation, running


def prepare_dir(small_nation_dir: Path, target: Path) -> Path:
    shutil.copytree(small_nation_dir, target)
    with running(target) as nation:
        demo.move(nation, 5, today_jst())
        linkage_setup.prepare(nation, 5)
    return target


@pytest.fixture(scope="session")
def linkage_dir(small_nation_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared nation on disk (copy it before changing it)."""
    return prepare_dir(small_nation_dir, tmp_path_factory.mktemp("linkage") / "nation")


@pytest.fixture(scope="module")
def nation_dir(linkage_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("exchange") / "nation"
    shutil.copytree(linkage_dir, d)
    return d


@pytest.fixture(scope="module")
def nation(nation_dir: Path) -> Iterator[Nation]:
    with running(nation_dir) as n:
        yield n
