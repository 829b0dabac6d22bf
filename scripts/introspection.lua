-- wrk script for scripts/bench_introspection.sh: cycles through the access
-- tokens in $TOKENS (one a line), so the server sees many distinct tokens.
-- MODE=introspect posts each to /oauth/introspect with $BASIC; otherwise it
-- is GET /api/me with the token as Bearer.
local tokens = {}
for line in io.lines(os.getenv("TOKENS")) do
  tokens[#tokens + 1] = line
end
local introspect = os.getenv("MODE") == "introspect"
local basic = os.getenv("BASIC")
local i = 0
local threads = {}

-- Each thread starts at its own place in the list.
function setup(thread)
  thread:set("offset", math.random(#tokens))
  table.insert(threads, thread)
end

request = function()
  i = (i + (offset or 0)) % #tokens + 1
  offset = 0
  local token = tokens[i]
  if introspect then
    return wrk.format("POST", "/oauth/introspect", {
      ["Authorization"] = basic,
      ["Content-Type"] = "application/x-www-form-urlencoded",
    }, "token=" .. token)
  end
  return wrk.format("GET", "/api/me", { ["Authorization"] = "Bearer " .. token })
end

-- Counts answers that say the token was not taken, so a run that measured
-- refusals is noticed (200 with {"active": false} for introspection).
inactive = 0
response = function(status, headers, body)
  if status ~= 200 or (introspect and not body:find('"active":true', 1, true)) then
    inactive = inactive + 1
  end
end

done = function(summary, latency, requests)
  local refused = 0
  for _, thread in ipairs(threads) do
    refused = refused + thread:get("inactive")
  end
  io.write(string.format("RESULT %.1f req/s p50 %.2f ms p99 %.2f ms requests %d refused %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests, refused))
end
