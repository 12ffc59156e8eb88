-- A copy of ../shared/peers/workloads/post.lua, so the CI smoke run (bench/smoke.sh) needs
-- nothing outside this repository. bench/run.sh drives every system with the peer's own copy.
-- wrk script: POST a GraphQL body with a bearer token.
--   BODY_FILE=workloads/w1.json TOKEN=<jwt> [EXPECT_LEN=<bytes>] wrk -t1 -cN -dDs -s workloads/post.lua URL
-- TOKEN empty/unset -> no Authorization header (used for the no-auth ceiling server).
-- EXPECT_LEN set -> every response must be HTTP 200 with exactly that many body bytes,
--   mismatches are counted as "bad" (GraphQL errors come back as HTTP 200, so status alone is not enough).
-- done() prints one machine-readable line: RESULT rps=... p50_ms=... p99_ms=... bad=...
local f = assert(io.open(os.getenv("BODY_FILE") or "workloads/w1.json", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
local token = os.getenv("TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

local expect = tonumber(os.getenv("EXPECT_LEN") or "")
if expect then
  function init(args)
    bad = 0
  end
  function response(status, headers, body)
    if status ~= 200 or #body ~= expect then
      bad = bad + 1
    end
  end
end

function done(summary, latency, requests)
  local b = 0
  for _, t in ipairs(threads) do
    b = b + (t:get("bad") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f requests=%d bad=%s sock_err=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.requests, expect and tostring(b) or "unchecked",
    e.connect + e.read + e.write + e.timeout, e.status))
end
