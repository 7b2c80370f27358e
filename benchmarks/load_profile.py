"""Where one labeler's request goes: SQL statements, transactions and time per phase.

    python benchmarks/load_profile.py                          # SQLite and PostgreSQL, 200 loops
    python benchmarks/load_profile.py --loops 50 --backends sqlite --cprofile 25

In-process (FastAPI ``TestClient``, no HTTP socket), one labeler with an API token runs
next-task -> save one box -> submit ``--loops`` times on a fresh project. Each SQL statement
is caught by SQLAlchemy's ``before/after_cursor_execute`` events, timed, and put in a phase by
the tables it touches:

    auth        api_tokens, users (Bearer token -> user)
    access      project_members, projects, the task lookup by id (membership and role)
    claim       next task: picking and locking a row (SELECT ... FOR UPDATE / guarded UPDATE)
    write       UPDATE tasks (guarded by version), task_annotations writes, label stats
    audit       INSERT INTO task_events
    response    what the answer re-reads: assets, tags, labels, review issues

``commits`` counts transactions ended (each one a round trip on PostgreSQL); "python" is the
request's wall time minus its SQL time (routing, validation, ORM, serialisation). ``--cprofile
N`` prints the N functions with the most cumulative time. Results:
benchmarks/results/load_profile.json.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).parent))
from _common import console, percentile, print_table, write_results
from load import FAST_HASHING, PG_ADMIN, build, drop_pg_database, fresh_pg_url

import labelwise
from labelwise.server.app import create_app

PG_DB = "labelwise_bench_profile"
KINDS = ("next", "save", "submit")
PHASES = ("auth", "access", "claim", "write", "audit", "response", "other")


def phase_of(sql: str) -> str:
    """The phase a statement belongs to, from the tables it names (see the module doc)."""
    s = " ".join(sql.split()).lower()
    if re.search(r"\b(from|update|into) (api_tokens|users)\b", s):
        return "auth"
    if s.startswith("insert into task_events"):
        return "audit"
    if "for update" in s or (s.startswith("update tasks") and "assignee_id is null" in s):
        return "claim"
    if s.startswith(("update tasks", "insert into task_annotations", "update task_annotations",
                     "delete from task_annotations")):
        return "write"
    if "label_classes.kind" in s:  # label stats for the submit event
        return "write"
    if "project_members" in s or re.search(r"\bfrom projects\b", s):
        return "access"
    if re.search(r"\bfrom (assets|asset_tags|review_issues|issue_comments|task_annotations)\b",
                 s):
        return "response"
    if re.search(r"\bfrom (tasks|label_classes|label_schemas)\b", s):
        return "claim" if "from tasks" in s else "write"
    return "other"


class SqlRecorder:
    """Statements, their time and the commits of the engine, per request."""

    def __init__(self, engine) -> None:
        self.statements: list[tuple[str, float]] = []
        self.commits = 0
        self._t0: float = 0.0
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)
        event.listen(engine, "commit", self._commit)

    def _before(self, conn, cursor, statement, params, context, executemany) -> None:
        self._t0 = time.perf_counter()

    def _after(self, conn, cursor, statement, params, context, executemany) -> None:
        self.statements.append((statement, time.perf_counter() - self._t0))

    def _commit(self, conn) -> None:
        self.commits += 1

    def take(self) -> tuple[list[tuple[str, float]], int]:
        out, commits = self.statements, self.commits
        self.statements, self.commits = [], 0
        return out, commits


def profile_backend(backend: str, loops: int, cprofile_top: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="labelwise-profile-"))
    url = fresh_pg_url(PG_DB) if backend == "postgresql" else None
    os.environ.update(FAST_HASHING)
    ws = labelwise.init(root / backend, database_url=url)
    try:
        setup = build(ws, n_assets=max(1000, loops * 2), n_labelers=1)
        client = TestClient(create_app(ws), base_url="http://localhost")
        client.headers["Authorization"] = f"Bearer {setup['tokens'][0]}"
        recorder = SqlRecorder(ws.engine)
        per: dict[str, dict[str, Any]] = {k: {"wall": [], "sql": [], "statements": [],
                                              "commits": [], "phases": defaultdict(float),
                                              "phase_counts": defaultdict(int),
                                              "sample": []} for k in KINDS}
        pid, cid = setup["project_id"], setup["class_id"]

        def call(kind: str, method: str, url: str, body: dict | None = None) -> dict:
            recorder.take()
            t0 = time.perf_counter()
            r = client.request(method, url, json=body)
            wall = time.perf_counter() - t0
            assert r.status_code == 200, f"{kind}: {r.status_code} {r.text}"
            statements, commits = recorder.take()
            rec = per[kind]
            rec["wall"].append(wall)
            rec["sql"].append(sum(d for _s, d in statements))
            rec["statements"].append(len(statements))
            rec["commits"].append(commits)
            for sql, d in statements:
                phase = phase_of(sql)
                rec["phases"][phase] += d
                rec["phase_counts"][phase] += 1
            if not rec["sample"]:
                rec["sample"] = [f"{phase_of(s)}: {' '.join(s.split())[:150]}"
                                 for s, _d in statements]
            return r.json()

        def loop() -> None:
            task = call("next", "POST", f"/api/projects/{pid}/tasks/next")["task"]
            saved = call("save", "PUT", f"/api/tasks/{task['id']}/labels", {
                "version": task["version"], "active_seconds": 4.0,
                "labels": [{"class_id": cid, "bbox": [10, 10, 50, 40]}]})
            call("submit", "POST", f"/api/tasks/{task['id']}/submit",
                 {"version": saved["version"], "active_seconds": 1.0})

        for _ in range(5):  # warm up: imports, statement caches, connection pool
            loop()
        for rec in per.values():
            for key in ("wall", "sql", "statements", "commits"):
                rec[key].clear()
            rec["phases"].clear()
            rec["phase_counts"].clear()
        profiler = cProfile.Profile() if cprofile_top else None
        if profiler:
            profiler.enable()
        for _ in range(loops):
            loop()
        if profiler:
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(cprofile_top)
            console.print(out.getvalue())
        client.close()
        return {
            kind: {
                "loops": loops,
                "wall_ms_p50": percentile(rec["wall"], 0.5) * 1000,
                "wall_ms_mean": sum(rec["wall"]) / loops * 1000,
                "sql_ms_mean": sum(rec["sql"]) / loops * 1000,
                "statements": sum(rec["statements"]) / loops,
                "commits": sum(rec["commits"]) / loops,
                "phase_ms": {p: rec["phases"][p] / loops * 1000 for p in PHASES
                             if p in rec["phases"]},
                "phase_statements": {p: rec["phase_counts"][p] / loops for p in PHASES
                                     if p in rec["phase_counts"]},
                "sample": rec["sample"],
            }
            for kind, rec in per.items()
        }
    finally:
        ws.close()
        if url:
            drop_pg_database(PG_DB)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loops", type=int, default=200)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--cprofile", type=int, default=0,
                    help="Print the N functions with the most cumulative time.")
    ap.add_argument("--show-sql", action="store_true",
                    help="Print the statements of one request of each kind.")
    ap.add_argument("--name", default="load_profile")
    args = ap.parse_args()
    console.print(f"PostgreSQL admin URL: {PG_ADMIN}" if "postgresql" in args.backends else "")
    results: dict[str, Any] = {"args": vars(args)}
    rows, phase_rows = [], []
    for backend in args.backends.split(","):
        res = results[backend] = profile_backend(backend, args.loops, args.cprofile)
        for kind, r in res.items():
            python_ms = r["wall_ms_mean"] - r["sql_ms_mean"]
            rows.append([backend, kind, r["statements"], r["commits"], r["wall_ms_p50"],
                         r["wall_ms_mean"], r["sql_ms_mean"], python_ms])
            phase_rows.append([backend, kind] + [
                f"{r['phase_ms'].get(p, 0):.2f} ({r['phase_statements'].get(p, 0):g})"
                for p in PHASES])
            if args.show_sql:
                console.print(f"[bold]{backend} {kind}[/]")
                for line in r["sample"]:
                    console.print(f"  {line}", markup=False, highlight=False)
    print_table("per request (in-process, one labeler)",
                ["backend", "kind", "SQL statements", "commits", "p50 ms", "mean ms",
                 "SQL ms", "python ms"], rows)
    print_table("SQL ms (statements) per phase", ["backend", "kind", *PHASES], phase_rows)
    console.print(f"wrote {write_results(args.name, results)}")


if __name__ == "__main__":
    main()
