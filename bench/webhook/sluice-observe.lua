-- One authenticated observe of the same series per request.
wrk.method = "POST"
wrk.body = "value=18000&labels=coordinator_pipeline,success"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["X-Private-Token"] = "bench-t0ken"
