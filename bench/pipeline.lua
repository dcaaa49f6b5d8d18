-- wrk script for bench/http.sh: HTTP/1.1 pipelining. Every write carries DEPTH
-- requests back to back (default 16; `wrk ... -s pipeline.lua -- 32` changes
-- it), and wrk waits for all DEPTH responses before writing again. wrk counts
-- each response, so "requests" in its report are single requests, not batches.

init = function(args)
   local depth = tonumber(args[1]) or 16
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format(nil, "/")
   end
   req = table.concat(r)
end

request = function()
   return req
end
