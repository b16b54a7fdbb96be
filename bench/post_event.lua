-- wrk script: POST a realistic ~300-byte tracking event with varying visitors and pages.
-- BENCH_WEBSITE_ID: the website id (or several, comma-separated: one picked at random per
-- request); BENCH_VISITORS: how many distinct visitors (default 5000).
-- BENCH_FORWARDED_FOR (optional): comma-separated client IPs sent as X-Forwarded-For, one picked
-- at random per request (with PULSE_TRUST_PROXY=1 events then come from several countries).
local websites = {}
for id in string.gmatch(os.getenv("BENCH_WEBSITE_ID") or "unknown", "[^,]+") do
  websites[#websites + 1] = id
end
local visitors = tonumber(os.getenv("BENCH_VISITORS") or "5000")
local pages = {
  "/", "/pricing", "/blog/how-we-built-a-live-view", "/docs/getting-started",
  "/products/blue-widget-42", "/about", "/contact", "/blog/privacy-friendly-analytics",
}
local referrers = {
  "https://www.google.com/search?q=live+analytics", "https://news.ycombinator.com/",
  "", "https://duckduckgo.com/", "https://twitter.com/someone/status/1234567890",
}

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 " ..
  "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
wrk.headers["Accept-Language"] = "en-US,en;q=0.9"

local forwarded = {}
for ip in string.gmatch(os.getenv("BENCH_FORWARDED_FOR") or "", "[^,]+") do
  forwarded[#forwarded + 1] = ip
end

local counter = 0
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)

request = function()
  counter = counter + 1
  local v = math.random(1, visitors)
  local body = string.format(
    '{"website_id":"%s","event_type":"pageview","pathname":"%s","visitor_id":"v%07d",' ..
    '"session_id":"s%07d","referrer":"%s","hostname":"bench.example.com",' ..
    '"title":"Pulse benchmark page title","screen_width":1440,"props":{"plan":"pro","n":%d}}',
    websites[math.random(#websites)], pages[math.random(#pages)], v, v, referrers[math.random(#referrers)], counter)
  if #forwarded > 0 then
    wrk.headers["X-Forwarded-For"] = forwarded[math.random(#forwarded)]
  end
  return wrk.format(nil, nil, nil, body)
end
