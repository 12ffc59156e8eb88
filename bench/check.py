"""Correctness checks of coursegraph's answers to the benchmark workloads.

usage: check.py URL TOKEN WORKLOADS_DIR TRUTH

TRUTH is `pg:DATABASE` — `pg:peerbench`, the peer's database, read by psql as the
postgres superuser with an explicit organization filter, so a pass also proves that
`coursegraph seed --bench` loaded the peer's data set; or coursegraph's own PostgreSQL
database — or `sqlite:PATH`, coursegraph's own SQLite file (the CI smoke run, which does
not need the peer). Prints PASS/FAIL lines to stderr
and, on stdout, one JSON object with the exact byte length of every workload's response
(wrk's EXPECT_LEN: under load every response must have exactly that length). Exits 1 on
any failure.
"""

import json
import sqlite3
import subprocess
import sys
import urllib.request
from decimal import Decimal
from hashlib import md5
from uuid import UUID

url, token, wl_dir, truth_source = sys.argv[1:5]
failures = 0


def seed_uuid(key: str) -> str:
    return str(UUID(bytes=md5(key.encode()).digest()))


ORG3 = seed_uuid("org:3")
FOREIGN_COURSE = seed_uuid("course:7:1")


def check(ok: bool, msg: str) -> None:
    global failures
    print(f"{'PASS' if ok else 'FAIL'}  {msg}", file=sys.stderr)
    if not ok:
        failures += 1


def post(body: bytes) -> tuple[int, bytes]:
    req = urllib.request.Request(
        url,
        data=body,
        headers={"content-type": "application/json", "accept": "application/json", "authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def psql(sql: str) -> str:
    return subprocess.run(
        ["su", "postgres", "-c", f"psql -X -d {truth_source.removeprefix('pg:')} -At -v ON_ERROR_STOP=1"],
        input=sql.encode(),
        capture_output=True,
        check=True,
    ).stdout.decode().strip()


def truth_pg(first: int) -> dict:
    return json.loads(
        psql(f"""
      select json_build_object('name', o.name, 'courses', coalesce((
          select json_agg(json_build_object('title', c.title, 'price', c.price::text,
                   'difficultyLevel', c.difficulty_level,
                   'tracks', (select json_agg(json_build_object('name', t.name, 'position', t.position)
                                              order by t.position)
                                from tracks t where t.course_id = c.id)) order by c.title, c.id)
            from (select * from courses where organization_id = o.id and is_published
                  order by title, id limit {first}) c), '[]'::json))
        from organizations o where o.id = '{ORG3}';""")
    )


def truth_sqlite(db: sqlite3.Connection, first: int) -> dict:
    org = UUID(ORG3).bytes
    (name,) = db.execute("select name from organizations where id = ?", (org,)).fetchone()
    courses = []
    rows = db.execute(
        "select id, title, price, difficulty_level from courses where organization_id = ? and is_published "
        "order by title, id limit ?",
        (org, first),
    ).fetchall()
    for cid, title, price, level in rows:
        tracks = db.execute("select name, position from tracks where course_id = ? order by position", (cid,))
        courses.append({
            "title": title,
            "price": str(price),
            "difficultyLevel": level,
            "tracks": [{"name": n, "position": p} for n, p in tracks],
        })
    return {"name": name, "courses": courses}


def own_ids() -> tuple[set, set]:
    """Ids of organization #3's published courses and of its tracks."""
    if sqlite_db is None:
        return (
            set(psql(f"select id from courses where organization_id = '{ORG3}' and is_published").split()),
            set(psql(f"select id from tracks where organization_id = '{ORG3}'").split()),
        )
    org = UUID(ORG3).bytes
    as_str = lambda rows: {str(UUID(bytes=r[0])) for r in rows}  # noqa: E731
    return (
        as_str(sqlite_db.execute("select id from courses where organization_id = ? and is_published", (org,))),
        as_str(sqlite_db.execute("select id from tracks where organization_id = ?", (org,))),
    )


sqlite_db = sqlite3.connect(truth_source.removeprefix("sqlite:")) if truth_source.startswith("sqlite:") else None


def truth(first: int) -> dict:
    """Organization #3's name and its first `first` published courses by title, with tracks."""
    return truth_pg(first) if sqlite_db is None else truth_sqlite(sqlite_db, first)


def normalize(org: dict) -> dict:
    """Our W1 answer in the ground truth's shape (prices as decimals, enums lower-case)."""
    return {
        "name": org["name"],
        "courses": [
            {
                "title": c["title"],
                "price": Decimal(str(c["price"])),
                "difficultyLevel": str(c["difficultyLevel"]).lower(),
                "tracks": [{"name": t["name"], "position": t["position"]} for t in c["tracks"]],
            }
            for c in org["courses"]["nodes"]
        ],
    }


lengths = {}
for first in (5, 20, 100):
    body = open(f"{wl_dir}/w1_first{first}.json", "rb").read()
    status, raw = post(body)
    resp = json.loads(raw)
    check(status == 200 and "errors" not in resp, f"W1 first={first}: HTTP {status}, no GraphQL errors")
    org = (resp.get("data") or {}).get("organization")
    expected = truth(first)
    for c in expected["courses"]:
        c["price"] = Decimal(c["price"])
    got = normalize(org) if org else None
    n = len(expected["courses"])
    check(got == expected, f"W1 first={first}: equals the ground truth ({n} courses x 5 tracks)")
    # The same response twice: the byte length is stable, so wrk can check every response.
    check(post(body)[1] == raw, f"W1 first={first}: the response is byte-identical when repeated")
    lengths[f"w1_first{first}"] = len(raw)

# Isolation: with ids, nothing of another organization.
ids_query = json.dumps({
    "query": "query($o: ID!) { organization(id: $o) { id courses(first: 100, filter: { published: true }) "
    "{ nodes { id organization { id } tracks { id } } } } }",
    "variables": {"o": ORG3},
}).encode()
status, raw = post(ids_query)
nodes = json.loads(raw)["data"]["organization"]["courses"]["nodes"]
own_courses, own_tracks = own_ids()
check(
    len(nodes) == len(own_courses)
    and all(c["organization"]["id"] == ORG3 and c["id"] in own_courses for c in nodes)
    and all(t["id"] in own_tracks for c in nodes for t in c["tracks"]),
    f"W1 with ids: {len(nodes)} courses, all of organization #3, tracks all of its courses",
)

# W2: a course of organization #7 by id is indistinguishable from a missing one.
w2 = open(f"{wl_dir}/w2.json", "rb").read()
status, raw = post(w2)
resp = json.loads(raw)
errors = resp.get("errors") or []
check(
    status == 200
    and resp.get("data") == {"course": None}
    and len(errors) == 1
    and errors[0]["extensions"]["code"] == "NOT_FOUND",
    f"W2: course of organization #7 -> null + NOT_FOUND ({raw[:160]!r})",
)
missing = w2.replace(FOREIGN_COURSE.encode(), seed_uuid("no such course").encode())
check(post(missing)[1] == raw, "W2: the answer is byte-identical to that for a course that does not exist")
lengths["w2"] = len(raw)

print(json.dumps(lengths))
sys.exit(1 if failures else 0)
