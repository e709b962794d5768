-- Distinct series: labels p0..p(N-1), cycling (N from the environment).
local n = tonumber(os.getenv("SERIES") or "10000")
local i = 0
request = function()
  i = i + 1
  local body = "value=100&labels=p" .. (i % n) .. ",success"
  return wrk.format("POST", nil, {["Content-Type"] = "application/x-www-form-urlencoded", ["X-Private-Token"] = "bench-t0ken"}, body)
end
