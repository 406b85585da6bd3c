"""The `audit` command at scale: every filter combination a viewer, operator or admin can issue.

Run by hand (never in the test suite), once; loading 5M rows takes minutes:
    .venv/bin/python bench/audit_bench.py [--rows 5000000] [--reps 10] [--database-url URL]

It creates its own schema (migrated, so the indexes are the real ones), loads `--rows` request
rows with generate_series in one INSERT … SELECT (indexes dropped during the load and built
again after it, which is what makes 5M rows take minutes rather than an hour), runs ANALYZE,
then times `AuditStore.query` as the `audit` command runs it (its columns) for:

- a non-admin (viewer or operator): `user` is forced to themselves, so: a heavy user, a light
  user and a user with no rows, each with every subset of env/command/status/approver;
- someone reviewing what they decided (`approver` = themselves, any requester): a heavy, a light
  and a non-approver, each with every subset of user/env/command/status;
- an admin: every subset of user/env/command/status/approver;

each with values that match many rows ("common"), few ("rare") or none ("none"), without
`since`, with `since=1d` and `since=30d`, and `limit` 20 and 500 (the default and the cap).  A case labelled
"none" must return 0 rows (checked).  The data is skewed like a real team's: a few people
ask most, most requests succeed, statuses like `interrupted` are rare.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from common import median_p95, scratch_schema  # bench/ is the script's folder, so on sys.path
from sqlalchemy import Table, text

from commands.audit import SHOWN
from infra.db.common import AuditFilter, utcnow
from infra.db.models import RequestRow
from infra.db.store import AuditStore, Database

USERS = 40  # slack:U000 … slack:U039, skewed: U000 asks most
APPROVERS = 8  # slack:U000 … slack:U007 decide, skewed too
ENVS = ["rumpleprod", "rumpletest", "rumpledev", "rumple"]  # phoenix: none (a "none" value)
COMMANDS = ["status", "logs", "gpu", "whoami", "deploy", "restart", "audit", "vm-status", "snapshots", "stacks",
            "envs", "help", "rollback", "snapshot", "stop", "start", "health", "lock", "unlock", "deny"]
NONE = {"user": "slack:UNEW", "env": "phoenix", "command": "restore", "status": "pending_approval",
        "approver": "slack:UNEW"}
LOAD = """
INSERT INTO requests (id, created_at, updated_at, actor, platform, channel, text, source, command, args, env,
                      target, changes, status, approver, correlation_id, event_count)
SELECT 'b-' || lpad(to_hex(g), 8, '0'), t, t,
       'slack:U' || lpad((floor(power(random(), 3) * :users))::int::text, 3, '0'),
       'slack', 'slack:C1', 'text', 'grammar',
       (CAST(:commands AS text[]))[1 + floor(power(random(), 2) * cardinality(CAST(:commands AS text[])))::int],
       '{}',
       (CAST(:envs AS text[]))[1 + floor(power(random(), 1.5) * cardinality(CAST(:envs AS text[])))::int],
       NULL, c < 0.3,
       CASE WHEN r < 0.85 THEN 'succeeded' WHEN r < 0.90 THEN 'failed' WHEN r < 0.95 THEN 'refused'
            WHEN r < 0.965 THEN 'denied' WHEN r < 0.975 THEN 'expired' WHEN r < 0.995 THEN 'cancelled'
            ELSE 'interrupted' END,
       -- who decided: every denied request, and a third of the changes that ran (approved first)
       CASE WHEN (r >= 0.95 AND r < 0.965) OR (c < 0.1 AND r < 0.90)
            THEN 'slack:U' || lpad((floor(power(random(), 2) * :approvers))::int::text, 3, '0') END,
       'c', 3
FROM (SELECT g, :now - g * :step AS t, random() AS r, random() AS c FROM generate_series(1, :rows) AS g) AS s
"""


@dataclass(frozen=True)
class Case:
    role: str
    label: str
    filt: AuditFilter
    expect_none: bool


def load(db: Database, rows: int) -> datetime:
    now = utcnow()
    step = timedelta(days=365) / rows  # a year of history
    began = time.perf_counter()
    table = RequestRow.__table__
    assert isinstance(table, Table)
    indexes = list(table.indexes)
    with db.engine.begin() as c:
        for idx in indexes:
            idx.drop(c)
        c.execute(text("SELECT setseed(0.42)"))
        c.execute(text(LOAD), {"users": USERS, "approvers": APPROVERS, "commands": COMMANDS, "envs": ENVS,
                               "now": now, "step": step, "rows": rows})
    loaded = time.perf_counter()
    with db.engine.begin() as c:
        c.execute(text("SET maintenance_work_mem = '256MB'"))
        for idx in indexes:
            idx.create(c)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM ANALYZE requests"))
    print(f"loaded {rows:,} rows in {loaded - began:.0f} s; {len(indexes)} indexes built and analysed in "
          f"{time.perf_counter() - loaded:.0f} s")
    return now


def values(db: Database) -> dict[str, dict[str, str]]:
    """Per column: its most frequent value (common) and its least frequent one (rare)."""
    out: dict[str, dict[str, str]] = {}
    with db.engine.connect() as c:
        for col, name in (("actor", "user"), ("env", "env"), ("command", "command"), ("status", "status"),
                          ("approver", "approver")):
            ranked = c.execute(text(f"SELECT {col}, count(*) FROM requests WHERE {col} IS NOT NULL GROUP BY {col} "
                                    "ORDER BY 2 DESC")).all()
            out[name] = {"common": ranked[0][0], "rare": ranked[-1][0], "none": NONE[name]}
            print(f"  {name}: common {ranked[0][0]} ({ranked[0][1]:,}), rare {ranked[-1][0]} ({ranked[-1][1]:,})")
    return out


def cases(vals: dict[str, dict[str, str]], now: datetime) -> list[Case]:
    out: list[Case] = []
    sinces = {None: "", now - timedelta(days=1): " since=1d", now - timedelta(days=30): " since=30d"}

    def add(role: str, fixed: dict[str, str], free: tuple[str, ...], fixed_label: str) -> None:
        for n in range(len(free) + 1):
            for subset in itertools.combinations(free, n):
                kinds = ("common", "rare", "none") if subset else ("-",)
                for kind, since, limit in itertools.product(kinds, sinces, (20, 500)):
                    given = {k: vals[k][kind] for k in subset}
                    args = {**fixed, **given}
                    label = " ".join([fixed_label, *(f"{k}={kind}" for k in subset)]).strip() or "(no filter)"
                    label += sinces[since] + f" limit={limit}"
                    none = kind == "none" or fixed_label.endswith("(no rows)")
                    out.append(Case(role, label, AuditFilter(user=args.get("user"), approver=args.get("approver"),
                                                             env=args.get("env"), command=args.get("command"),
                                                             status=args.get("status"),
                                                             since=since, limit=limit, columns=SHOWN), none))

    for who, user in (("heavy", vals["user"]["common"]), ("light", vals["user"]["rare"]),
                      ("(no rows)", vals["user"]["none"])):
        add("viewer/operator (user=self)", {"user": user}, ("env", "command", "status", "approver"), f"self={who}")
    for who, approver in (("heavy", vals["approver"]["common"]), ("light", vals["approver"]["rare"]),
                          ("(no rows)", vals["approver"]["none"])):
        # what they decided themselves, whoever asked (audit.py: "what you decided, you have seen")
        add("approver (approver=self)", {"approver": approver}, ("user", "env", "command", "status"),
            f"decided-by-self={who}")
    add("admin", {}, ("user", "env", "command", "status", "approver"), "")
    return out


def run(store: AuditStore, all_cases: list[Case], reps: int) -> list[tuple[Case, float, float, int]]:
    """Time every case `reps` times, round-robin: a burst of load from elsewhere on the machine
    then costs one sample of many cases, not the whole tail of one."""
    counts = []
    for case in all_cases:
        got = store.query(case.filt)  # warm; and the label is checked
        if case.expect_none and got:
            raise AssertionError(f"{case.label}: labelled 'none' but returns {len(got)} rows")
        counts.append(len(got))
    samples: list[list[float]] = [[] for _ in all_cases]
    for _ in range(reps):
        for i, case in enumerate(all_cases):
            t = time.perf_counter()
            store.query(case.filt)
            samples[i].append((time.perf_counter() - t) * 1000)
    return [(case, *median_p95(ms), n) for case, ms, n in zip(all_cases, samples, counts, strict=True)]


def report(results: list[tuple[Case, float, float, int]], rows: int) -> None:
    print(f"\n{'who':<30} {'cases':>5} {'median of medians':>18} {'worst median':>13} {'worst p95':>10}  worst case")
    for role in dict.fromkeys(c.role for c, *_ in results):
        mine = [r for r in results if r[0].role == role]
        worst = max(mine, key=lambda r: r[2])
        print(f"{role:<30} {len(mine):>5} {statistics.median(r[1] for r in mine):>15.2f} ms "
              f"{max(r[1] for r in mine):>10.2f} ms {worst[2]:>7.2f} ms  {worst[0].label} ({worst[3]} rows)")
    print(f"\nslowest 10 of {len(results)} cases over {rows:,} rows (p95):")
    for case, med, p95, n in sorted(results, key=lambda r: -r[2])[:10]:
        print(f"  {p95:8.2f} ms (median {med:6.2f})  {case.role}: {case.label} -> {n} rows")
    over = [r for r in results if r[2] >= 50]
    print(f"\n{len(over)} case(s) at or over 50 ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--schema", default=None,
                    help="use (or fill, when empty) this schema and keep it, to look at plans afterwards")
    opts = ap.parse_args()
    with kept(opts.database_url, opts.schema) if opts.schema else scratch_schema(opts.database_url) as url:
        db = Database(url)
        db.migrate()
        with db.engine.connect() as c:
            have = c.execute(text("SELECT count(*) FROM requests")).scalar() or 0
            newest = c.execute(text("SELECT max(created_at) FROM requests")).scalar()
        now = newest if have and newest else load(db, opts.rows)
        vals = values(db)
        results = run(AuditStore(db), cases(vals, now), opts.reps)
        report(results, have or opts.rows)
        db.dispose()


@contextmanager
def kept(database_url: str, schema: str) -> Iterator[str]:
    from sqlalchemy import create_engine

    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
    admin.dispose()
    sep = "&" if "?" in database_url else "?"
    yield f"{database_url}{sep}options=-csearch_path%3D{schema}"


if __name__ == "__main__":
    main()
