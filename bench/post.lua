-- wrk: POST the body in $BODY_FILE with $CONTENT_TYPE (and $KEY as a Bearer
-- key when set); counts non-200 answers.
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("CONTENT_TYPE")
local key = os.getenv("KEY")
if key and key ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. key
end

local bad = 0
function response(status, headers, body)
    if status ~= 200 then
        bad = bad + 1
    end
end

function done(summary, latency, requests)
    io.write(string.format("non200 %d\n", bad))
    io.write(string.format("p50 %.3f\np99 %.3f\n",
        latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
