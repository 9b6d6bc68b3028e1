-- wrk script of `cargo xtask bench xen`: optional pipelining, and the
-- results as RINGLET-FIGURE lines for the host (xtask/src/e2e/report.rs).
--
--   wrk ... -s bench.lua URL -- LABEL DEPTH
--
-- LABEL names the figures (<LABEL>.requests, ...); DEPTH > 1 sends DEPTH
-- requests back to back on each connection and waits for all DEPTH answers
-- before sending the next batch (wrk then records one latency per batch).
-- Other wrk options (-H 'Connection: close', -c, -d) apply as usual.

-- Threads' scripts run init(); done() runs in the main script, which reads
-- the label back from the first thread.
label = "run"
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  label = args[1] or label
  local depth = tonumber(args[2] or "1") or 1
  if depth > 1 then
    local batch = {}
    for i = 1, depth do
      batch[i] = wrk.format(nil)
    end
    pipelined = table.concat(batch)
  end
end

function request()
  if pipelined then
    return pipelined
  end
  return wrk.format(nil)
end

local function figure(name, value, unit)
  io.write(string.format("RINGLET-FIGURE %s.%s %.0f %s\n", label, name, value, unit))
end

function done(summary, latency, requests)
  if threads[1] then
    label = threads[1]:get("label")
  end
  local e = summary.errors
  figure("requests", summary.requests, "req")
  figure("duration_us", summary.duration, "us")
  figure("bytes", summary.bytes, "bytes")
  figure("errors", e.connect + e.read + e.write + e.status + e.timeout, "errors")
  figure("errors_status", e.status, "errors")
  figure("p50_us", latency:percentile(50), "us")
  figure("p99_us", latency:percentile(99), "us")
end
