"""個人番号通知書: bulk print runs (flow 1-1) and single notices on demand, with reprints marked.

A print run is first recorded as ``started`` with its notices assigned, then its PDF is written
atomically, then it is marked ``done`` and each notice's print recorded.  A run killed in between
is finished on the next call: if its file is complete it was (or may have been) printed and is
only marked done; otherwise it is rendered again.  A notice printed a second time is a reprint.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy import exists, func, insert, select, update

from kojinbango.common.errors import NotFound
from kojinbango.documents.notice import NoticeData, render_notice_runs, render_notices
from kojinbango.domain.jst import today_jst
from kojinbango.municipality.register.models import Notice, NoticePrint, PrintRun, Resident
from kojinbango.municipality.register.service import SEXES, RegisterService, full_address, now

log = logging.getLogger(__name__)
RUN_SIZE = 1_000
APPLICATION_URL = "https://www.kojinbango.example/apply?id="


class NoticePrinter:
    def __init__(self, register: RegisterService, mayor_title: str, workers: int | None = None):
        self.register = register
        self.workers = workers or os.cpu_count() or 1
        self.db = register.db
        self.mayor_title = mayor_title
        self.directory = register.files_dir / "notices"

    def _notice_data(self, notice: Notice, r: Resident, reprint: bool, issued_on: dt.date) -> NoticeData:
        assert r.my_number is not None
        return NoticeData(
            notice_id=f"{self.register.lg_code}-{notice.id:08d}",
            municipality_name=self.register.name,
            mayor_title=self.mayor_title,
            issued_on=issued_on,
            postal_code=r.postal_code,
            address=full_address(r.address, r.address_extra),
            name=f"{r.family_name}\u3000{r.given_name}",
            kana=f"{r.family_kana}\u3000{r.given_kana}",
            birth_date=r.birth_date,
            sex=SEXES.get(r.sex, ""),
            my_number=r.my_number,
            application_id=notice.application_id,
            qr_payload=APPLICATION_URL + notice.application_id,
            reprint=reprint,
        )

    def _run_data(self, run: PrintRun) -> list[NoticeData]:
        with self.db.transaction() as s:
            rows = s.execute(
                select(Notice, Resident)
                .join(Resident, Resident.id == Notice.resident_id)
                .where(Notice.print_run_id == run.id)
                .order_by(Notice.id)
            ).all()
            printed_before = set(
                s.scalars(
                    select(NoticePrint.notice_id).where(NoticePrint.notice_id.in_([n.id for n, _ in rows]))
                )
            )
            return [
                self._notice_data(n, r, n.id in printed_before, today_jst(run.started_at)) for n, r in rows
            ]

    def _render_runs(self, runs: Sequence[PrintRun]) -> None:
        """Render runs in parallel worker processes; each file appears complete or not at all."""
        self.directory.mkdir(parents=True, exist_ok=True)
        render_notice_runs(
            [(self._run_data(run), self.directory / run.file_name) for run in runs], self.workers
        )

    def _finish_run(self, run_id: int) -> int:
        with self.db.transaction() as s:
            run = s.get(PrintRun, run_id, with_for_update=True)
            assert run is not None
            if run.status == "done":
                return 0
            notice_ids = list(s.scalars(select(Notice.id).where(Notice.print_run_id == run_id)))
            printed_before = set(
                s.scalars(select(NoticePrint.notice_id).where(NoticePrint.notice_id.in_(notice_ids)))
            )
            ts = now()
            s.execute(
                insert(NoticePrint),
                [
                    {
                        "notice_id": nid,
                        "print_run_id": run_id,
                        "reprint": nid in printed_before,
                        "printed_at": ts,
                    }
                    for nid in notice_ids
                ],
            )
            run.status, run.finished_at = "done", ts
            return len(notice_ids)

    def print_pending(self, run_size: int = RUN_SIZE, progress: Callable[[int], None] | None = None) -> int:
        """Print every notice not yet printed, in bulk runs of ``run_size`` pages; returns pages.

        Runs are rendered in parallel worker processes, ``workers`` at a time.
        """
        pages = 0
        # Finish runs a killed process left behind.
        with self.db.transaction() as s:
            unfinished = list(
                s.scalars(select(PrintRun).where(PrintRun.status == "started", PrintRun.kind == "bulk"))
            )
        # A render killed midway leaves only its hidden temporary file; it was never printed.
        if self.directory.exists():
            for stale in self.directory.glob(".bulk-*.part"):
                stale.unlink(missing_ok=True)
        missing = [run for run in unfinished if not (self.directory / run.file_name).exists()]
        if missing:
            self._render_runs(missing)
        for run in unfinished:
            pages += self._finish_run(run.id)
        while True:
            runs: list[PrintRun] = []
            for _ in range(self.workers):
                started = self._start_run(run_size)
                if started is None:
                    break
                runs.append(started)
            if not runs:
                return pages
            self._render_runs(runs)
            for run in runs:
                n = self._finish_run(run.id)
                pages += n
                if progress:
                    progress(n)

    def _start_run(self, run_size: int) -> PrintRun | None:
        """Record a new bulk run holding the next ``run_size`` unprinted notices, or None."""
        with self.db.transaction() as s:
            ids = list(
                s.scalars(
                    select(Notice.id).where(Notice.print_run_id.is_(None)).order_by(Notice.id).limit(run_size)
                )
            )
            if not ids:
                return None
            run = PrintRun(kind="bulk", file_name="", pages=len(ids), status="started", started_at=now())
            s.add(run)
            s.flush()
            run.file_name = f"bulk-{run.id:06d}.pdf"
            s.execute(update(Notice).where(Notice.id.in_(ids)).values(print_run_id=run.id))
            return run

    def print_for_resident(self, resident_id: int) -> Path:
        """One person's current notice on demand (staff page); a second print is marked 再発行."""
        with self.db.transaction() as s:
            r = self.register.get_resident(s, resident_id)
            notice = s.scalar(
                select(Notice)
                .where(Notice.resident_id == r.id)
                .order_by(Notice.my_number_version.desc())
                .limit(1)
            )
            if notice is None or r.my_number is None:
                raise NotFound("this person has no 個人番号通知書 yet")
            reprint = bool(s.scalar(select(exists().where(NoticePrint.notice_id == notice.id))))
            run = PrintRun(kind="on_demand", file_name="", pages=1, status="started", started_at=now())
            s.add(run)
            s.flush()
            run.file_name = f"single-{run.id:06d}.pdf"
            data = self._notice_data(notice, r, reprint, today_jst(run.started_at))
            path = self.directory / run.file_name
            self.directory.mkdir(parents=True, exist_ok=True)
            render_notices([data], path)
            s.add(NoticePrint(notice_id=notice.id, print_run_id=run.id, reprint=reprint, printed_at=now()))
            run.status, run.finished_at = "done", now()
        return path

    def counts(self) -> dict[str, int]:
        with self.db.transaction() as s:
            return {
                "notices": s.scalar(select(func.count()).select_from(Notice)) or 0,
                "printed": s.scalar(select(func.count(func.distinct(NoticePrint.notice_id)))) or 0,
                "reprints": s.scalar(
                    select(func.count()).select_from(NoticePrint).where(NoticePrint.reprint.is_(True))
                )
                or 0,
            }
