-- wrk: POST the body in $BODY_FILE with $CONTENT_TYPE (and $KEY as a Bearer
-- key when set).  Answers that are not 2xx are counted by wrk itself
-- ("Non-2xx or 3xx responses" in its summary, read by bench/Wrk.pm): a
-- counter here would live in each thread's Lua state, which done() never
-- sees.
--
-- With $VARY set, the first "VARY" and 16 digits in the body become a
-- number of their own in every request (from the clock, then counting up):
-- the same image with other bytes, so that every request is a cache miss.
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("CONTENT_TYPE")
local key = os.getenv("KEY")
if key and key ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. key
end

local vary = os.getenv("VARY")
if vary and vary ~= "" then
    local head, tail = wrk.body:match("^(.-)VARY%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d(.*)$")
    assert(head, "VARY: the body holds no VARY and 16 digits")
    local n = os.time() * 100000
    request = function()
        n = n + 1
        return wrk.format(nil, nil, nil,
                          head .. string.format("VARY%016d", n) .. tail)
    end
end
