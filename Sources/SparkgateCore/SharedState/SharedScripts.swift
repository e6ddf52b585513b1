/// The Lua scripts that decide shared quotas and ownership atomically inside Redis. `admit` makes the same
/// decisions, in the same order, as `SessionLedger.admit`; records are sorted sets scored by the time they
/// expire, so a replica that dies stops renewing what it held and its counts heal by themselves.
public enum SharedScripts {
    /// KEYS: bucket, owners, user sessions, session operations, team operations, placement.
    /// ARGV[1]: `SharedAdmission.Arguments`, one JSON document with named fields.
    /// Replies {'ok', new session 0/1, new operation 0/1, endpoint, engine, seal} (where the session lives, ''
    /// when nowhere yet, as sealed by the replica that placed it), {'pass'}, {'rate', wait}, {'foreign'},
    /// {'sessions', n}, {'op_exists'}, {'session_ops', n} or {'team_ops', n}.
    public static let admit = """
        local a = cjson.decode(ARGV[1])
        local now = a.now
        local rate = a.rate
        local burst = a.burst
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
        local me = a.member
        redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
        if a.reject_foreign then
          for _, owner in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
            if owner ~= me then return {'foreign'} end
          end
        end
        local isNew = redis.call('ZSCORE', KEYS[2], me) == false
        if isNew and not a.may_create then return {'pass'} end
        redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
        if isNew then
          local n = redis.call('ZCARD', KEYS[3])
          if n >= a.max_sessions then return {'sessions', n} end
        end
        local newOp = 0
        if a.runs_operation and a.operation ~= '' then
          redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
          if redis.call('ZSCORE', KEYS[4], a.operation) == false then
            local running = redis.call('ZCARD', KEYS[4])
            if running >= a.max_session_operations then return {'session_ops', running} end
            redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
            local inTeam = redis.call('ZCARD', KEYS[5])
            if inTeam >= a.max_team_operations then return {'team_ops', inTeam} end
            newOp = 1
          elseif a.starts_operation then
            return {'op_exists'}
          end
          local opExpiry = a.operation_expiry
          redis.call('ZADD', KEYS[4], 'GT', opExpiry, a.operation)
          redis.call('ZADD', KEYS[5], 'GT', opExpiry, a.team_operation_member)
          extend(4, opExpiry)
          extend(5, opExpiry)
        end
        local sessionExpiry = a.session_expiry
        redis.call('ZADD', KEYS[2], 'GT', sessionExpiry, me)
        redis.call('ZADD', KEYS[3], 'GT', sessionExpiry, a.session)
        extend(2, sessionExpiry)
        extend(3, sessionExpiry)
        local place = {false, false}
        if isNew then
          -- Left by an earlier session of this id that expired: it is not where this one lives.
          redis.call('DEL', KEYS[6])
        else
          place = redis.call('HMGET', KEYS[6], 'e', 'g', 'm')
          if place[1] or place[2] then extend(6, sessionExpiry) end
        end
        return {'ok', isNew and 1 or 0, newOp, place[1] or '', place[2] or '', place[3] or ''}
        """

    /// Records where a session lives, once: the first replica to choose wins and every other is told its
    /// choice. KEYS: placement. ARGV[1]: `SharedScriptArguments.Place` (mode 'claim' keeps a recorded
    /// placement; 'move' replaces it: an operator let sessions move off a failed endpoint, or the recorded one
    /// was not sealed by a replica). Replies {endpoint, engine, seal} as recorded.
    public static let place = """
        local a = cjson.decode(ARGV[1])
        if a.mode == 'claim' then
          local place = redis.call('HMGET', KEYS[1], 'e', 'g', 'm')
          if place[1] or place[2] then return {place[1] or '', place[2] or '', place[3] or ''} end
        end
        redis.call('DEL', KEYS[1])
        if a.endpoint ~= '' then redis.call('HSET', KEYS[1], 'e', a.endpoint) end
        if a.engine ~= '' then redis.call('HSET', KEYS[1], 'g', a.engine) end
        redis.call('HSET', KEYS[1], 'm', a.seal)
        redis.call('PEXPIRE', KEYS[1], a.expiry_ms)
        return {a.endpoint, a.engine, a.seal}
        """

    /// Forgets a session, its operations and its placement, and tells every replica. KEYS: owners, user
    /// sessions, session operations, team operations, placement. ARGV[1]: `SharedScriptArguments.Release`.
    public static let release = """
        local a = cjson.decode(ARGV[1])
        for _, op in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
          redis.call('ZREM', KEYS[4], a.team_operation_prefix .. string.len(op) .. ':' .. op)
        end
        redis.call('DEL', KEYS[3], KEYS[5])
        redis.call('ZREM', KEYS[1], a.member)
        redis.call('ZREM', KEYS[2], a.session)
        redis.call('PUBLISH', a.channel, a.message)
        return 1
        """

    /// Ends an operation and tells every replica. KEYS: session operations, team operations. ARGV[1]:
    /// `SharedScriptArguments.EndOperation`.
    public static let endOperation = """
        local a = cjson.decode(ARGV[1])
        redis.call('ZREM', KEYS[1], a.operation)
        redis.call('ZREM', KEYS[2], a.team_operation_member)
        redis.call('PUBLISH', a.channel, a.message)
        return 1
        """

    /// Renews what a replica holds, or writes it back after Redis lost it (mode 'reassert'). Renewing never
    /// shortens a record and never brings back one that was removed (a release elsewhere); writing back adds
    /// what is missing, and keeps a placement another replica recorded since.
    /// KEYS: one sorted set per member, then one placement per placement. ARGV[1]: `SharedScriptArguments.Hold`.
    public static let hold = """
        local a = cjson.decode(ARGV[1])
        local now = a.now
        local n = #a.members
        local reassert = a.mode == 'reassert'
        local function extend(key, expiry)
          local ms = math.ceil((expiry - now) * 1000) + 1000
          if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
        end
        for i, m in ipairs(a.members) do
          if reassert then
            redis.call('ZADD', KEYS[i], 'GT', m.expiry, m.member)
            extend(KEYS[i], m.expiry)
          elseif redis.call('ZADD', KEYS[i], 'XX', 'GT', 'CH', m.expiry, m.member) == 1 then
            extend(KEYS[i], m.expiry)
          end
        end
        for j, p in ipairs(a.placements) do
          local key = KEYS[n + j]
          if reassert and redis.call('EXISTS', key) == 0 then
            if p.endpoint ~= '' then redis.call('HSET', key, 'e', p.endpoint) end
            if p.engine ~= '' then redis.call('HSET', key, 'g', p.engine) end
            redis.call('HSET', key, 'm', p.seal)
          end
          if redis.call('EXISTS', key) == 1 then extend(key, p.expiry) end
        end
        return 1
        """

    /// Reads the epoch, setting it to ARGV[1] when Redis has none (it is new, restarted empty or flushed).
    /// KEYS: epoch. Replies the epoch.
    public static let epoch = """
        local e = redis.call('GET', KEYS[1])
        if e then return e end
        redis.call('SET', KEYS[1], ARGV[1])
        return ARGV[1]
        """
}
