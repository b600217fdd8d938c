-- wrk: POST the body in $BODY_FILE with $CONTENT_TYPE (and $KEY as a Bearer
-- key when set).  Answers that are not 2xx are counted by wrk itself
-- ("Non-2xx or 3xx responses" in its summary, read by bench/Wrk.pm): a
-- counter here would live in each thread's Lua state, which done() never
-- sees.
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("CONTENT_TYPE")
local key = os.getenv("KEY")
if key and key ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. key
end
