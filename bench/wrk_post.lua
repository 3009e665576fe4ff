-- wrk script: POST one NDJSON record (the first line of the file given after `--`)
-- to the postback path with the headers the td sink sends; at the end print one JSON
-- line on stderr: {"records": requests, "seconds": ..., "errors": ...}.
function init(args)
  local f = assert(io.open(args[1], "rb"))
  local line = f:read("*l")
  f:close()
  wrk.method = "POST"
  wrk.body = line
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-TD-Write-Key"] = "bench-key"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.stderr:write(string.format(
    '{"records": %d, "seconds": %.4f, "errors": %d}\n',
    summary.requests, summary.duration / 1e6,
    e.connect + e.read + e.write + e.status + e.timeout))
end
