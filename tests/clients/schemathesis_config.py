"""Writes a schemathesis.toml whose fuzz dictionary holds the server's real ids, so that
generated queries and mutations reach actual rows instead of only NOT_FOUND.
Usage: python3 schemathesis_config.py OUT.toml   (COURSEGRAPH_URL and ADMIN_TOKEN set)."""

import json
import os
import sys
import urllib.request

QUERY = """{ me { user { id } memberships { id } }
  organizations { id members(includeInactive: true) { nodes { id user { id } } }
    courses(first: 100) { nodes { id tracks { id } } } } }"""

req = urllib.request.Request(
    os.environ["COURSEGRAPH_URL"] + "/graphql",
    data=json.dumps({"query": QUERY}).encode(),
    headers={"content-type": "application/json", "authorization": "Bearer " + os.environ["ADMIN_TOKEN"]},
)
data = json.load(urllib.request.urlopen(req))["data"]
ids = {data["me"]["user"]["id"]}
for org in data["organizations"]:
    ids.add(org["id"])
    for m in org["members"]["nodes"]:
        ids.update([m["id"], m["user"]["id"]])
    for c in org["courses"]["nodes"]:
        ids.add(c["id"])
        ids.update(t["id"] for t in c["tracks"])
ids = sorted(ids)
args = ["id", "courseId", "organizationId", "membershipId", "resourceId", "trackIds[*]",
        "input.courseId", "input.organizationId", "input.userId", "input.instructorId"]
with open(sys.argv[1], "w") as f:
    f.write("[dictionaries.ids]\nvalues = " + json.dumps(ids) + "\n\n[parameters]\n")
    for a in args:
        f.write(f'"*.*.{a}" = {{ dictionary = "ids", probability = 0.7 }}\n')
print(f"schemathesis dictionary: {len(ids)} ids")
