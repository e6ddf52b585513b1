/// The Lua scripts behind a launch pool shared by every replica (`state.kind: redis`): one engine per share
/// key over all replicas, `max_engines` and `max_engines_per_team` counted over all of them, each engine's
/// record (`SharedEngine`: whom it serves, where it listens, its process and state, sealed) for the replicas
/// that did not launch it. No record holds a token: replicas derive each engine's token from its id.
///
/// An engine is a hash `engine:<id>` (fields `SharedEngine.fieldNames` and the seal `m`), named by
/// `engine-for:<backend><key>` while it serves that key, and a member of `engines:<backend>` and
/// `engines-team:<backend><team>` (scored by expiry). The launching replica renews all of it every
/// heartbeat; a replica that dies stops renewing, and its engines' records expire.
///
/// Arguments are one JSON document (ARGV[1]) with named fields (`SharedEngineArguments`), read with Redis's
/// own `cjson`.
public enum SharedEngineScripts {
    /// Sets every field of a hash from a JSON object of strings.
    static let hashSetter = """
        local function hset(key, fields)
          local flat = {}
          for k, v in pairs(fields) do
            flat[#flat + 1] = k
            flat[#flat + 1] = v
          end
          redis.call('HSET', key, unpack(flat))
        end
        """

    /// KEYS: the share key's engine name, the backend's engines, the team's engines, the proposed engine's
    /// hash, the warm engine's hash (the hash of id '' when none is offered).
    /// ARGV[1]: `SharedEngineArguments.Acquire`.
    /// Replies {'exists', id, the fields of `SharedEngine.fieldNames`, seal}, {'launch'}, {'adopt'},
    /// {'max_engines', n} or {'team_engines', n}. A warm engine is adopted only while it is still warm,
    /// still the offering replica's, and started for this team or for any: taken in this script, so two
    /// tenants can never both take it.
    public static let acquire =
        hashSetter + """

            local a = cjson.decode(ARGV[1])
            local now = a.now
            local ms = math.ceil((a.expiry - now) * 1000) + 1000
            redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
            redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
            local current = redis.call('GET', KEYS[1])
            if current then
              local e = redis.call('HMGET', a.engine_prefix .. string.len(current) .. ':' .. current,
                'b', 'k', 't', 'u', 'r', 'h', 'p', 'pid', 's', 'w', 'm')
              local present = false
              local reply = {'exists', current}
              for i = 1, 11 do
                if e[i] then present = true end
                reply[i + 2] = e[i] or ''
              end
              if present then return reply end
              redis.call('DEL', KEYS[1])
            end
            local team = a.team
            local function teamFull()
              if team == '' then return nil end
              local n = redis.call('ZCARD', KEYS[3])
              if n >= a.team_limit then return n end
              return nil
            end
            local id = a.launch.id
            local reply = 'launch'
            if a.adopt then
              local w = redis.call('HMGET', KEYS[5], 'w', 'r', 't')
              if w[1] == '1' and w[2] == a.adopt.replica and (w[3] == '' or w[3] == team) then
                local full = teamFull()
                if full then return {'team_engines', full} end
                id = a.adopt.id
                reply = 'adopt'
                hset(KEYS[5], a.adopt.fields)
                redis.call('PEXPIRE', KEYS[5], ms)
              end
            end
            if reply == 'launch' then
              local n = redis.call('ZCARD', KEYS[2])
              if n >= a.max_engines then return {'max_engines', n} end
              local full = teamFull()
              if full then return {'team_engines', full} end
              hset(KEYS[4], a.launch.fields)
              redis.call('PEXPIRE', KEYS[4], ms)
              redis.call('ZADD', KEYS[2], a.expiry, id)
              redis.call('PEXPIRE', KEYS[2], ms)
            end
            redis.call('SET', KEYS[1], id, 'PX', ms)
            if team ~= '' then
              redis.call('ZADD', KEYS[3], a.expiry, id)
              redis.call('PEXPIRE', KEYS[3], ms)
            end
            return {reply}
            """

    /// Registers a warm engine (no tenant yet), counted among the backend's engines. KEYS: the backend's
    /// engines, the engine's hash. ARGV[1]: `SharedEngineArguments.Warm`. Replies {'ok'} or {'max_engines', n}.
    public static let warm =
        hashSetter + """

            local a = cjson.decode(ARGV[1])
            local ms = math.ceil((a.expiry - a.now) * 1000) + 1000
            redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', a.now)
            local n = redis.call('ZCARD', KEYS[1])
            if n >= a.max_engines then return {'max_engines', n} end
            hset(KEYS[2], a.engine.fields)
            redis.call('PEXPIRE', KEYS[2], ms)
            redis.call('ZADD', KEYS[1], a.expiry, a.engine.id)
            redis.call('PEXPIRE', KEYS[1], ms)
            return {'ok'}
            """

    /// The launching replica renews its engines' records, rewriting every field as it knows them (a state
    /// change, its process, or a field someone else changed). KEYS: per engine, its hash, its share key's
    /// name (the hash of id '' for a warm engine), the backend's engines, the team's engines.
    /// ARGV[1]: `SharedEngineArguments.Renew`. A record that is gone (stopped elsewhere) stays gone; a key's
    /// name that is gone or names an engine of another key is given back to the engine that serves it.
    public static let renew =
        hashSetter + """

            local a = cjson.decode(ARGV[1])
            local ms = math.ceil((a.expiry - a.now) * 1000) + 1000
            for i, e in ipairs(a.engines) do
              local base = 4 * (i - 1)
              local hash = KEYS[base + 1]
              if redis.call('EXISTS', hash) == 1 then
                hset(hash, e.fields)
                redis.call('PEXPIRE', hash, ms)
                local named = redis.call('GET', KEYS[base + 2])
                if named == e.id then
                  redis.call('PEXPIRE', KEYS[base + 2], ms)
                elseif e.fields.w == '0' and (not named or redis.call('HGET', a.engine_prefix .. string.len(named) .. ':' .. named, 'k') ~= e.fields.k) then
                  -- The key's name is gone, or names an engine that does not serve this key: it is this one's.
                  redis.call('SET', KEYS[base + 2], e.id, 'PX', ms)
                end
                redis.call('ZADD', KEYS[base + 3], 'XX', a.expiry, e.id)
                redis.call('PEXPIRE', KEYS[base + 3], ms)
                redis.call('ZADD', KEYS[base + 4], 'XX', a.expiry, e.id)
                if redis.call('EXISTS', KEYS[base + 4]) == 1 then redis.call('PEXPIRE', KEYS[base + 4], ms) end
              end
            end
            return 1
            """

    /// An engine stopped or died: its records go and every replica is told. KEYS: its hash, its share key's
    /// name, the backend's engines, the team's engines, its use counts. ARGV: id, channel, sealed message.
    public static let gone = """
        redis.call('DEL', KEYS[1], KEYS[5])
        if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
        redis.call('ZREM', KEYS[3], ARGV[1])
        redis.call('ZREM', KEYS[4], ARGV[1])
        redis.call('PUBLISH', ARGV[2], ARGV[3])
        return 1
        """

    /// Removes a share key's name if it still names engine ARGV[1]: a mapping no engine of the replica it
    /// names stands behind. KEYS: the share key's name. Replies 1 when removed.
    public static let unmap = """
        if redis.call('GET', KEYS[1]) == ARGV[1] then
          redis.call('DEL', KEYS[1])
          return 1
        end
        return 0
        """
}
