"""The script of brace.RetryBudget on a Redis (or Valkey) server, and the constants its Redis
subclass (RedisRetryBudget in brace.budget) shares with it.

The hosts share one balance, kept as the local C core keeps it: ten buckets of ttl / 10 on
the server's clock (TIME, in microseconds), in three keys with the budget's name as their
hash tag:

- "brace:rb:{NAME}:d", a hash: milli-tokens deposited, field = the bucket's number
  (microseconds since 1970 // bucket_us). Each host adds its calls x ratio there, in
  batches: every flush_interval, and with each of its withdrawals.
- "brace:rb:{NAME}:w", a hash: withdrawals (whole tokens) by bucket.
- "brace:rb:{NAME}:c", a string: the configuration the hosts share
  ("ratio_milli min_per_second ttl_us"); a host made with another one is refused.

The balance is min_per_second x ttl + the deposits of the last ten buckets - the
withdrawals of the last ten buckets, exactly the local budget's. Every call prunes the
buckets that left the window, and every key is written with a PX of the ttl (rounded up
to a millisecond), after which none of its buckets counts any more: a budget nobody uses
leaves nothing on the server. All numbers stay below 2**53 (microseconds since 1970 ~2**51).
"""

from __future__ import annotations

from brace import _redis

__all__ = ["EVENT_KINDS", "FLUSH_INTERVAL", "MISMATCH", "SCRIPT", "keys"]

#: Seconds between a budget's flushes of this host's deposits (its default).
FLUSH_INTERVAL = 0.25
#: A Redis budget's events: the local budget's, and its store's.
EVENT_KINDS = ("exhausted", "store_lost", "store_back")
#: The script's first reply item when the key holds another configuration.
MISMATCH = -1


def keys(name: str) -> tuple[str, str, str]:
    """The deposit, withdrawal and configuration keys of the budget `name`."""
    return f"brace:rb:{{{name}}}:d", f"brace:rb:{{{name}}}:w", f"brace:rb:{{{name}}}:c"


# KEYS: deposits, withdrawals, configuration. ARGV: configuration, bucket_us, floor (milli-tokens:
# min_per_second x ttl), deposit (milli-tokens to add now, 0: none), take ("1": withdraw one token
# if the balance covers it), px (the keys' expiry, ms).
# Reply: {took (1/0), balance after it (milli-tokens)}, or {MISMATCH, the stored configuration}.
SCRIPT = _redis.Script("""
local stored = redis.call('GET', KEYS[3])
if stored and stored ~= ARGV[1] then return {-1, stored} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local epoch = math.floor(now / tonumber(ARGV[2]))
local field = string.format('%.0f', epoch)
local oldest = epoch - 9
local px = ARGV[6]
local function live(key)
  local total = 0
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    if tonumber(all[i]) < oldest then
      redis.call('HDEL', key, all[i])
    else
      total = total + tonumber(all[i + 1])
    end
  end
  return total
end
if tonumber(ARGV[4]) > 0 then
  redis.call('HINCRBY', KEYS[1], field, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], px)
end
local balance = tonumber(ARGV[3]) + live(KEYS[1]) - 1000 * live(KEYS[2])
local took = 0
if ARGV[5] == '1' and balance >= 1000 then
  redis.call('HINCRBY', KEYS[2], field, 1)
  redis.call('PEXPIRE', KEYS[2], px)
  balance = balance - 1000
  took = 1
end
redis.call('SET', KEYS[3], ARGV[1], 'PX', px)
return {took, balance}
""")
