"""The scenarios against running servers (as after `kojinbango demo`): the CLI uses them, not a nation
of its own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from exchange_helpers import Services, cli_args, scenarios

from kojinbango.cli import main
from kojinbango.exchangecli import nation_urls


@pytest.mark.slow
def test_the_cli_uses_the_running_servers(
    linkage_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "nation"
    shutil.copytree(linkage_dir, d)
    services = Services(d)
    try:
        for org in services.topology.organisations:
            services.start(org)
        with nation_urls(d) as (_, urls, nation):
            assert nation is None and urls == services.topology.directory()
        codes = []
        for s in scenarios(d):
            codes.append(main(cli_args(s["command"], d)))
            out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
            assert out["status"] in ("answered", "refused")
        assert codes == [0, 0, 1]
        assert main(["exchange", "records", "--data-dir", str(d)]) == 0
        assert json.loads(capsys.readouterr().out)["agree"]
    finally:
        services.stop_all()
