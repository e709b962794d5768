-- One authenticated push of the same histogram series per request (POST
-- replaces the group's metrics of that name: the Pushgateway equivalent).
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/plain; version=0.0.4"
wrk.headers["Authorization"] = "Basic YmVuY2g6YmVuY2gtdDBrZW4=" -- bench:bench-t0ken
local b = {}
local labels = 'pipeline="coordinator_pipeline",status="success"'
table.insert(b, "# TYPE deployment_duration_seconds histogram\n")
for _, le in ipairs({"60", "300", "900", "1800", "3600", "7200", "14400", "28800", "+Inf"}) do
  local v = 1
  if le == "60" or le == "300" or le == "900" or le == "1800" or le == "3600" or le == "7200" or le == "14400" then v = 0 end
  table.insert(b, "deployment_duration_seconds_bucket{" .. labels .. ',le="' .. le .. '"} ' .. v .. "\n")
end
table.insert(b, "deployment_duration_seconds_sum{" .. labels .. "} 18000\n")
table.insert(b, "deployment_duration_seconds_count{" .. labels .. "} 1\n")
wrk.body = table.concat(b)
