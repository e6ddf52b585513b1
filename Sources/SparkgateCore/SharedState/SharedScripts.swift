/// The Lua scripts that decide shared quotas and ownership atomically inside Redis. `admit` makes the same
/// decisions, in the same order, as `SessionLedger.admit`; records are sorted sets scored by the time they
/// expire, so a replica that dies stops renewing what it held and its counts heal by themselves.
public enum SharedScripts {
    /// KEYS: bucket, owners, user sessions, session operations, team operations.
    /// ARGV: now, rate, burst, reject foreign (0/1), member, session id, may create (0/1), runs an operation
    /// (0/1), operation id, max sessions, max operations per session, max operations per team, session
    /// expiry, operation expiry, team-operation member.
    /// Replies {'ok', new session 0/1, new operation 0/1}, {'pass'}, {'rate', wait}, {'foreign'},
    /// {'sessions', n}, {'session_ops', n} or {'team_ops', n}.
    public static let admit = """
        local now = tonumber(ARGV[1])
        local rate = tonumber(ARGV[2])
        local burst = tonumber(ARGV[3])
        local function extend(key, expiry)
          local ms = math.ceil((expiry - now) * 1000) + 1000
          if redis.call('PTTL', KEYS[key]) < ms then redis.call('PEXPIRE', KEYS[key], ms) end
        end
        if rate > 0 then
          local b = redis.call('HMGET', KEYS[1], 't', 'u')
          local tokens = tonumber(b[1]) or burst
          local updated = tonumber(b[2]) or now
          tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
          updated = math.max(updated, now)
          local wait = nil
          if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
          redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'u', string.format('%.17g', updated))
          redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
          if wait then return {'rate', string.format('%.17g', wait)} end
        end
        local me = ARGV[5]
        redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
        if ARGV[4] == '1' then
          for _, owner in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
            if owner ~= me then return {'foreign'} end
          end
        end
        local isNew = redis.call('ZSCORE', KEYS[2], me) == false
        if isNew and ARGV[7] ~= '1' then return {'pass'} end
        redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
        if isNew then
          local n = redis.call('ZCARD', KEYS[3])
          if n >= tonumber(ARGV[10]) then return {'sessions', n} end
        end
        local newOp = 0
        if ARGV[8] == '1' and ARGV[9] ~= '' then
          redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
          if redis.call('ZSCORE', KEYS[4], ARGV[9]) == false then
            local running = redis.call('ZCARD', KEYS[4])
            if running >= tonumber(ARGV[11]) then return {'session_ops', running} end
            redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
            local inTeam = redis.call('ZCARD', KEYS[5])
            if inTeam >= tonumber(ARGV[12]) then return {'team_ops', inTeam} end
            newOp = 1
          end
          local opExpiry = tonumber(ARGV[14])
          redis.call('ZADD', KEYS[4], 'GT', opExpiry, ARGV[9])
          redis.call('ZADD', KEYS[5], 'GT', opExpiry, ARGV[15])
          extend(4, opExpiry)
          extend(5, opExpiry)
        end
        local sessionExpiry = tonumber(ARGV[13])
        redis.call('ZADD', KEYS[2], 'GT', sessionExpiry, me)
        redis.call('ZADD', KEYS[3], 'GT', sessionExpiry, ARGV[6])
        extend(2, sessionExpiry)
        extend(3, sessionExpiry)
        return {'ok', isNew and 1 or 0, newOp}
        """

    /// Forgets a session and its operations. KEYS: owners, user sessions, session operations, team
    /// operations. ARGV: member, session id, team-operation member prefix.
    public static let release = """
        for _, op in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
          redis.call('ZREM', KEYS[4], ARGV[3] .. string.len(op) .. ':' .. op)
        end
        redis.call('DEL', KEYS[3])
        redis.call('ZREM', KEYS[1], ARGV[1])
        redis.call('ZREM', KEYS[2], ARGV[2])
        return 1
        """

    /// Renews what a replica holds, never shortening it and never bringing back what was removed.
    /// KEYS: sorted sets; ARGV: now, then an (expiry, member) pair per key.
    public static let renew = """
        local now = tonumber(ARGV[1])
        for i = 1, #KEYS do
          local expiry = tonumber(ARGV[2 * i])
          if redis.call('ZADD', KEYS[i], 'XX', 'GT', 'CH', expiry, ARGV[2 * i + 1]) == 1 then
            local ms = math.ceil((expiry - now) * 1000) + 1000
            if redis.call('PTTL', KEYS[i]) < ms then redis.call('PEXPIRE', KEYS[i], ms) end
          end
        end
        return 1
        """
}
