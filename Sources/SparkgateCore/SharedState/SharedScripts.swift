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
    /// choice. KEYS: placement. ARGV: endpoint, engine, expiry in ms from now, mode ('claim' keeps a recorded
    /// placement; 'move' replaces it: an operator let sessions move off a failed endpoint, or the recorded one
    /// was not sealed by a replica), the placement's seal.
    /// Replies {endpoint, engine, seal} as recorded.
    public static let place = """
        if ARGV[4] == 'claim' then
          local place = redis.call('HMGET', KEYS[1], 'e', 'g', 'm')
          if place[1] or place[2] then return {place[1] or '', place[2] or '', place[3] or ''} end
        end
        redis.call('DEL', KEYS[1])
        if ARGV[1] ~= '' then redis.call('HSET', KEYS[1], 'e', ARGV[1]) end
        if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'g', ARGV[2]) end
        redis.call('HSET', KEYS[1], 'm', ARGV[5])
        redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
        return {ARGV[1], ARGV[2], ARGV[5]}
        """

    /// Forgets a session, its operations and its placement, and tells every replica. KEYS: owners, user
    /// sessions, session operations, team operations, placement. ARGV: member, session id, team-operation
    /// member prefix, channel, message.
    public static let release = """
        for _, op in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
          redis.call('ZREM', KEYS[4], ARGV[3] .. string.len(op) .. ':' .. op)
        end
        redis.call('DEL', KEYS[3], KEYS[5])
        redis.call('ZREM', KEYS[1], ARGV[1])
        redis.call('ZREM', KEYS[2], ARGV[2])
        redis.call('PUBLISH', ARGV[4], ARGV[5])
        return 1
        """

    /// Ends an operation and tells every replica. KEYS: session operations, team operations. ARGV: operation
    /// id, team-operation member, channel, message.
    public static let endOperation = """
        redis.call('ZREM', KEYS[1], ARGV[1])
        redis.call('ZREM', KEYS[2], ARGV[2])
        redis.call('PUBLISH', ARGV[3], ARGV[4])
        return 1
        """

    /// Renews what a replica holds, or writes it back after Redis lost it (mode 'reassert'). Renewing never
    /// shortens a record and never brings back one that was removed (a release elsewhere); writing back adds
    /// what is missing, and keeps a placement another replica recorded since.
    /// KEYS: n sorted sets, then placements. ARGV: now, n, mode ('renew' or 'reassert'), an (expiry, member)
    /// pair per sorted set, then an (expiry, endpoint, engine, seal) quadruple per placement.
    public static let hold = """
        local now = tonumber(ARGV[1])
        local n = tonumber(ARGV[2])
        local reassert = ARGV[3] == 'reassert'
        local function extend(key, expiry)
          local ms = math.ceil((expiry - now) * 1000) + 1000
          if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
        end
        for i = 1, n do
          local expiry = tonumber(ARGV[2 + 2 * i])
          local member = ARGV[3 + 2 * i]
          if reassert then
            redis.call('ZADD', KEYS[i], 'GT', expiry, member)
            extend(KEYS[i], expiry)
          elseif redis.call('ZADD', KEYS[i], 'XX', 'GT', 'CH', expiry, member) == 1 then
            extend(KEYS[i], expiry)
          end
        end
        local base = 3 + 2 * n
        for j = n + 1, #KEYS do
          local at = base + 4 * (j - n - 1)
          if reassert and redis.call('EXISTS', KEYS[j]) == 0 then
            if ARGV[at + 2] ~= '' then redis.call('HSET', KEYS[j], 'e', ARGV[at + 2]) end
            if ARGV[at + 3] ~= '' then redis.call('HSET', KEYS[j], 'g', ARGV[at + 3]) end
            redis.call('HSET', KEYS[j], 'm', ARGV[at + 4])
          end
          if redis.call('EXISTS', KEYS[j]) == 1 then extend(KEYS[j], tonumber(ARGV[at + 1])) end
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
