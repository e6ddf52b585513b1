/// The Lua scripts behind a launch pool shared by every replica (`state.kind: redis`): one engine per share
/// key over all replicas, `max_engines` and `max_engines_per_team` counted over all of them, each engine's
/// record (where it listens, its token, its state) for the replicas that did not launch it.
///
/// An engine is a hash `engine:<id>` (fields: b backend, k share key, t team, u user, r launching replica,
/// h host, p port, tok token, s state, w warm), named by `engine-for:<backend><key>` while it serves that
/// key, and a member of `engines:<backend>` and `engines-team:<backend><team>` (scored by expiry). The
/// launching replica renews all of it every heartbeat; a replica that dies stops renewing, and its engines'
/// records expire.
public enum SharedEngineScripts {
    /// KEYS: the share key's engine name, the backend's engines, the team's engines, the new engine's hash,
    /// the adopted warm engine's hash ('' id when none).
    /// ARGV: now, expiry, max engines, team limit, new id, replica, host, port, token, backend, share key,
    /// team, user, adopted warm engine id, the prefix of engine hash names (`SharedKeys.engine` less the id).
    /// Replies {'exists', id, state, host, port, token, replica}, {'launch'}, {'adopt'},
    /// {'max_engines', n} or {'team_engines', n}.
    public static let acquire = """
        local now = tonumber(ARGV[1])
        local expiry = tonumber(ARGV[2])
        local ms = math.ceil((expiry - now) * 1000) + 1000
        redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
        redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
        local current = redis.call('GET', KEYS[1])
        if current then
          local e = redis.call('HMGET', ARGV[15] .. string.len(current) .. ':' .. current, 's', 'h', 'p', 'tok', 'r')
          if e[1] then return {'exists', current, e[1], e[2], e[3], e[4], e[5]} end
          redis.call('DEL', KEYS[1])
        end
        local team = ARGV[12]
        local function teamFull()
          if team == '' then return nil end
          local n = redis.call('ZCARD', KEYS[3])
          if n >= tonumber(ARGV[4]) then return n end
          return nil
        end
        local id = ARGV[5]
        local reply = 'launch'
        if ARGV[14] ~= '' and redis.call('EXISTS', KEYS[5]) == 1 then
          -- A warm engine of this replica: already counted among the backend's engines.
          local full = teamFull()
          if full then return {'team_engines', full} end
          id = ARGV[14]
          reply = 'adopt'
          redis.call('HSET', KEYS[5], 'k', ARGV[11], 't', team, 'u', ARGV[13], 'w', '0')
          redis.call('PEXPIRE', KEYS[5], ms)
        else
          local n = redis.call('ZCARD', KEYS[2])
          if n >= tonumber(ARGV[3]) then return {'max_engines', n} end
          local full = teamFull()
          if full then return {'team_engines', full} end
          redis.call('HSET', KEYS[4], 'b', ARGV[10], 'k', ARGV[11], 't', team, 'u', ARGV[13], 'r', ARGV[6], 'h', ARGV[7], 'p', ARGV[8], 'tok', ARGV[9],
            's', 'starting', 'w', '0')
          redis.call('PEXPIRE', KEYS[4], ms)
          redis.call('ZADD', KEYS[2], expiry, id)
          redis.call('PEXPIRE', KEYS[2], ms)
        end
        redis.call('SET', KEYS[1], id, 'PX', ms)
        if team ~= '' then
          redis.call('ZADD', KEYS[3], expiry, id)
          redis.call('PEXPIRE', KEYS[3], ms)
        end
        return {reply}
        """

    /// Registers a warm engine (no tenant yet), counted among the backend's engines. KEYS: the backend's
    /// engines, the engine's hash. ARGV: now, expiry, max engines, id, replica, host, port, token, backend.
    /// Replies {'ok'} or {'max_engines', n}.
    public static let warm = """
        local now = tonumber(ARGV[1])
        local expiry = tonumber(ARGV[2])
        local ms = math.ceil((expiry - now) * 1000) + 1000
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
        local n = redis.call('ZCARD', KEYS[1])
        if n >= tonumber(ARGV[3]) then return {'max_engines', n} end
        redis.call('HSET', KEYS[2], 'b', ARGV[9], 'k', '', 't', '', 'u', '', 'r', ARGV[5], 'h', ARGV[6], 'p', ARGV[7], 'tok', ARGV[8], 's', 'starting', 'w', '1')
        redis.call('PEXPIRE', KEYS[2], ms)
        redis.call('ZADD', KEYS[1], expiry, ARGV[4])
        redis.call('PEXPIRE', KEYS[1], ms)
        return {'ok'}
        """

    /// The launching replica renews its engines (and records a state change). KEYS: per engine, its hash,
    /// its share key's name ('' id for a warm engine), the backend's engines, the team's engines.
    /// ARGV: now, expiry, then per engine: id, state.
    public static let renew = """
        local now = tonumber(ARGV[1])
        local expiry = tonumber(ARGV[2])
        local ms = math.ceil((expiry - now) * 1000) + 1000
        for i = 0, #KEYS / 4 - 1 do
          local id = ARGV[3 + 2 * i]
          local hash = KEYS[4 * i + 1]
          if redis.call('EXISTS', hash) == 1 then
            redis.call('HSET', hash, 's', ARGV[4 + 2 * i])
            redis.call('PEXPIRE', hash, ms)
            if redis.call('GET', KEYS[4 * i + 2]) == id then redis.call('PEXPIRE', KEYS[4 * i + 2], ms) end
            redis.call('ZADD', KEYS[4 * i + 3], 'XX', expiry, id)
            redis.call('PEXPIRE', KEYS[4 * i + 3], ms)
            redis.call('ZADD', KEYS[4 * i + 4], 'XX', expiry, id)
            if redis.call('EXISTS', KEYS[4 * i + 4]) == 1 then redis.call('PEXPIRE', KEYS[4 * i + 4], ms) end
          end
        end
        return 1
        """

    /// An engine stopped or died: its records go and every replica is told. KEYS: its hash, its share key's
    /// name, the backend's engines, the team's engines, its use counts. ARGV: id, channel, message.
    public static let gone = """
        redis.call('DEL', KEYS[1], KEYS[5])
        if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
        redis.call('ZREM', KEYS[3], ARGV[1])
        redis.call('ZREM', KEYS[4], ARGV[1])
        redis.call('PUBLISH', ARGV[2], ARGV[3])
        return 1
        """
}
