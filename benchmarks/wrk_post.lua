-- wrk script for bench_serve.py --wrk: POST one body from a file, count non-2xx answers, and end
-- with one JSON line for the benchmark to read.
--   wrk -s wrk_post.lua URL -- BODY_FILE CONTENT_TYPE
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  wrk.method, wrk.body = "POST", file:read("*a")
  file:close()
  wrk.headers["Content-Type"] = args[2]
  non_2xx = {} -- status -> count, per thread (each has its own Lua state); summed in done()
end

-- wrk itself counts only statuses over 399 as errors; a 1xx or 3xx is no answer either.
function response(status, headers, body)
  if status < 200 or status > 299 then
    non_2xx[status] = (non_2xx[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local statuses = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("non_2xx")) do
      statuses[status] = (statuses[status] or 0) + count
    end
  end
  local counts = {}
  for status, count in pairs(statuses) do
    table.insert(counts, string.format('"%d": %d', status, count))
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"non_2xx": {%s}, "connect": %d, "read": %d, "write": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    table.concat(counts, ", "), e.connect, e.read, e.write, e.timeout))
end
