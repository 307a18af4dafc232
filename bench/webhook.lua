-- wrk script: POST /webhook with distinct, pre-signed Twilio forms; prints BENCH lines at the end.
-- Usage: wrk -t2 -c50 -d15s --latency -s bench/webhook.lua URL -- requests.lua THREADS
-- requests.lua (from bench/make_requests.py) returns { {signature, body}, ... }. Thread k of
-- THREADS sends entries k+1, k+1+THREADS, ... so no two threads send the same MessageSid.

local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

function init(args)
   local data = dofile(args[1])
   local step = tonumber(args[2])
   requests = {}
   for i = id + 1, #data, step do
      local headers = {
         ["Content-Type"] = "application/x-www-form-urlencoded",
         ["X-Twilio-Signature"] = data[i][1],
      }
      requests[#requests + 1] = wrk.format("POST", "/webhook", headers, data[i][2])
   end
   index = 0
   wrapped = 0 -- times this thread ran out of distinct requests and started over
end

function request()
   index = index + 1
   if index > #requests then
      index = 1
      wrapped = wrapped + 1
   end
   return requests[index]
end

function done(summary, latency, requests)
   local repeated = 0
   for _, thread in ipairs(threads) do
      if thread:get("wrapped") > 0 then
         repeated = 1
      end
   end
   local lines = {
      { "requests", summary.requests },
      { "duration_us", summary.duration },
      { "p50_us", latency:percentile(50) },
      { "p95_us", latency:percentile(95) },
      { "p99_us", latency:percentile(99) },
      { "mean_us", latency.mean },
      { "max_us", latency.max },
      { "errors_connect", summary.errors.connect },
      { "errors_read", summary.errors.read },
      { "errors_write", summary.errors.write },
      { "errors_status", summary.errors.status },
      { "errors_timeout", summary.errors.timeout },
      { "wrapped", repeated },
   }
   for _, line in ipairs(lines) do
      io.write(string.format("BENCH %s=%.1f\n", line[1], line[2]))
   end
end
