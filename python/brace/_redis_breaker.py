"""The scripts of brace.CircuitBreaker on a Redis (or Valkey) server, and the constants its
Redis subclass (RedisCircuitBreaker in brace.breaker) shares with them.

Each host keeps its compiled breaker and decides locally; what the hosts share lives in
three keys with the breaker's name as their hash tag:

- "brace:cb:{NAME}:s", a hash: the shared state word. `gen` (bumped by every shared
  transition), `state` ("closed" or "open"), `until` (the server's ms at which an OPEN
  breaker lets probes in), and the current HALF_OPEN's probe outcomes (`done`, `failed`,
  `slow`). An OPEN whose `until` has passed is the cluster's HALF_OPEN.
- "brace:cb:{NAME}:w", a hash: each host's window as it last flushed it ("calls failures
  slow at_ms"), field = the host's id. The cluster's window is their sum; a host that
  stops flushing drops out after `stale` ms.
- "brace:cb:{NAME}:p", a sorted set: the live probe leases (member = lease id, score =
  the server's ms at which it expires). At most half_open_calls leases plus completed
  probes per HALF_OPEN, cluster-wide; a lease not returned (its host died) expires.

Times come from the server (TIME), so the hosts' clocks do not matter; every number the
scripts compute is an integer below 2**53 (ms since 1970, counts) or a rate compare.
"""

from __future__ import annotations

from brace import _redis

__all__ = ["DONE", "EVENT_KINDS", "FLUSH", "FLUSH_INTERVAL", "PROBE", "keys"]

#: Seconds between a breaker's flushes of its window to the store (its default).
FLUSH_INTERVAL = 0.25
#: A Redis breaker's events: the local breaker's, and its store's.
EVENT_KINDS = ("state_transition", "not_permitted", "success", "error", "ignored_error", "would_open",
               "store_lost", "store_back")  # fmt: skip


def keys(name: str) -> tuple[str, str, str]:
    """The state, window and probe-lease keys of the breaker `name`."""
    return f"brace:cb:{{{name}}}:s", f"brace:cb:{{{name}}}:w", f"brace:cb:{{{name}}}:p"


_COMMON = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'gen', 'state', 'until')
local gen = tonumber(s[1] or '0')
local state = s[2] or 'closed'
local untl = tonumber(s[3] or '0')
local function open(wait)
  gen = gen + 1
  state = 'open'
  untl = now + wait
  redis.call('HSET', KEYS[1], 'gen', gen, 'state', state, 'until', untl, 'done', 0, 'failed', 0, 'slow', 0)
  redis.call('DEL', KEYS[2], KEYS[3])
end
local function keep(ttl)
  local left = ttl
  if state == 'open' and untl - now > 0 then left = left + untl - now end
  redis.call('PEXPIRE', KEYS[1], left)
end
local function reply()
  return {gen, state, untl - now}
end
"""

# KEYS: state, window, leases. ARGV: host, known_gen, calls, failures, slow, opened_wait_ms (-1:
# this host did not open), minimum_calls (0: counts never open it: consecutive_failures mode),
# failure_rate, slow_rate, stale_ms, ttl_ms, wait_ms (an opening by the cluster's counts).
# A host whose known generation is the store's adds its window; the cluster's window opens the
# breaker (or this host's own opening does). Reply: {gen, state, ms until probes (if open)}.
FLUSH = _redis.Script(_COMMON + """
if state == 'closed' and tonumber(ARGV[2]) == gen then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3] .. ' ' .. ARGV[4] .. ' ' .. ARGV[5] .. ' ' .. now)
  local calls, failures, slow = 0, 0, 0
  local all = redis.call('HGETALL', KEYS[2])
  for i = 1, #all, 2 do
    local c, f, w, at = string.match(all[i + 1], '(%d+) (%d+) (%d+) (%d+)')
    if now - tonumber(at) > tonumber(ARGV[10]) then
      redis.call('HDEL', KEYS[2], all[i])
    else
      calls = calls + tonumber(c)
      failures = failures + tonumber(f)
      slow = slow + tonumber(w)
    end
  end
  redis.call('PEXPIRE', KEYS[2], ARGV[10])
  local wait = tonumber(ARGV[6])
  if wait >= 0 then
    open(wait)
  elseif tonumber(ARGV[7]) > 0 and calls > 0 and calls >= tonumber(ARGV[7]) and
      (failures >= tonumber(ARGV[8]) * calls or slow >= tonumber(ARGV[9]) * calls) then
    open(tonumber(ARGV[12]))
  end
end
keep(tonumber(ARGV[11]))
return reply()
""")

# KEYS: state, window, leases. ARGV: lease id, half_open_calls, lease_ms, ttl_ms.
# Reply: {1, gen}: a lease, this probe may run; {0, ms}: refused (every probe is out or done,
# or ms until probes); {2, gen}: the shared state is CLOSED (the store lost it, or a host has not
# heard yet): the host's own breaker decides.
PROBE = _redis.Script(_COMMON + """
if state ~= 'open' then return {2, gen} end
if now < untl then return {0, untl - now} end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local taken = redis.call('ZCARD', KEYS[3]) + tonumber(redis.call('HGET', KEYS[1], 'done') or '0')
if taken >= tonumber(ARGV[2]) then return {0, 0} end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[3]) + tonumber(ARGV[4]))
keep(tonumber(ARGV[3]) + tonumber(ARGV[4]))
return {1, gen}
""")

# KEYS: state, window, leases. ARGV: lease id, mode ("d": done, "g": given back, nothing counts),
# failed (0/1), slow (0/1), half_open_calls, failure_rate, slow_rate, wait_ms, simple (1: one
# failed probe re-opens), ttl_ms. A lease that expired (or belongs to an earlier HALF_OPEN)
# counts nothing. The last probe decides: OPEN again for wait_ms, or CLOSED.
DONE = _redis.Script(_COMMON + """
if redis.call('ZREM', KEYS[3], ARGV[1]) == 0 or ARGV[2] == 'g' or state ~= 'open' then
  return reply()
end
local done = redis.call('HINCRBY', KEYS[1], 'done', 1)
local failed = redis.call('HINCRBY', KEYS[1], 'failed', tonumber(ARGV[3]))
local slow = redis.call('HINCRBY', KEYS[1], 'slow', tonumber(ARGV[4]))
local n = tonumber(ARGV[5])
if ARGV[9] == '1' and failed > 0 then
  open(tonumber(ARGV[8]))
elseif done >= n then
  if failed >= tonumber(ARGV[6]) * n or slow >= tonumber(ARGV[7]) * n then
    open(tonumber(ARGV[8]))
  else
    gen = gen + 1
    state = 'closed'
    untl = 0
    redis.call('HSET', KEYS[1], 'gen', gen, 'state', state, 'until', 0, 'done', 0, 'failed', 0, 'slow', 0)
    redis.call('DEL', KEYS[2], KEYS[3])
  end
end
keep(tonumber(ARGV[10]))
return reply()
""")
