// What the proxy knows about Redis commands: which are deterministic reads it may cache, which
// write which keys (so a write through the proxy drops the entries it makes stale), which need a
// connection of their own, which are administrative, and which the proxy answers itself.
// Commands not listed are forwarded and treated as possible writes to their first argument;
// Redis client tracking covers the rest.

export type CommandKind = 'read' | 'write' | 'nokey' | 'stateful' | 'flush' | 'proxy'

export interface CommandSpec {
  /** Upper-case name. */
  readonly name: string
  readonly kind: CommandKind
  /** Argument index of the first key (0 = none). */
  readonly first: number
  /** Last key index: positive = absolute, -1 = the last argument, -2 = all but the last. */
  readonly last: number
  readonly step: number
  /** Keys follow a numkeys argument at this index (EVAL, FCALL, LMPOP...). */
  readonly numkeysAt: number
  /** A deterministic read whose reply may be cached. */
  readonly cacheable: boolean
  /** The command has subcommands that matter to the policy (CONFIG SET, CLIENT KILL...). */
  readonly container: boolean
}

const table = new Map<string, CommandSpec>()

function add(kind: CommandKind, names: string, first = 0, last = first, step = 1, opts: { cacheable?: boolean; numkeysAt?: number } = {}) {
  for (const name of names.split(/\s+/).filter(Boolean)) {
    const spec: CommandSpec = Object.freeze({
      name,
      kind,
      first,
      last,
      step,
      numkeysAt: opts.numkeysAt ?? 0,
      cacheable: opts.cacheable ?? false,
      container: CONTAINERS.has(name),
    })
    table.set(name, spec)
    table.set(name.toLowerCase(), spec)
  }
}

/** Commands whose first argument is a subcommand (Redis writes them `config|set`). */
const CONTAINERS = new Set(['ACL', 'CLIENT', 'CLUSTER', 'COMMAND', 'CONFIG', 'DEBUG', 'FUNCTION', 'LATENCY', 'MEMORY', 'MODULE', 'OBJECT', 'PUBSUB', 'SCRIPT', 'SLOWLOG', 'XINFO', 'XGROUP'])

const cacheable = { cacheable: true }
// Deterministic reads: the same command on the same data gives the same bytes.
add('read', 'GET STRLEN GETRANGE SUBSTR GETBIT BITCOUNT BITPOS HGET HMGET HGETALL HKEYS HVALS HLEN HEXISTS HSTRLEN', 1, 1, 1, cacheable)
add('read', 'LRANGE LINDEX LLEN LPOS SMEMBERS SISMEMBER SMISMEMBER SCARD TYPE XLEN XRANGE XREVRANGE GEOPOS GEODIST GEOHASH', 1, 1, 1, cacheable)
add('read', 'ZRANGE ZREVRANGE ZRANGEBYSCORE ZREVRANGEBYSCORE ZRANGEBYLEX ZREVRANGEBYLEX ZSCORE ZMSCORE ZCARD ZCOUNT ZLEXCOUNT ZRANK ZREVRANK', 1, 1, 1, cacheable)
add('read', 'MGET EXISTS SINTER SUNION SDIFF', 1, -1, 1, cacheable)
// Reads that must not be cached (time-dependent or random) and need no invalidation.
add('read', 'TTL PTTL EXPIRETIME PEXPIRETIME OBJECT SRANDMEMBER HRANDFIELD ZRANDMEMBER HSCAN SSCAN ZSCAN DUMP TOUCH PFCOUNT', 1)
add('nokey', 'PING ECHO INFO TIME DBSIZE CONFIG COMMAND LASTSAVE ROLE MEMORY SLOWLOG LATENCY SCAN KEYS RANDOMKEY SCRIPT FUNCTION')
add('nokey', 'PUBLISH SPUBLISH PUBSUB LOLWUT EXEC DISCARD UNWATCH BGSAVE BGREWRITEAOF SAVE ACL CLUSTER READONLY READWRITE')
add('nokey', 'DEBUG MODULE SHUTDOWN REPLICAOF SLAVEOF FAILOVER PFSELFTEST PFDEBUG')
// Writes and the keys they touch.
add('write', 'SET SETNX SETEX PSETEX GETSET GETDEL GETEX APPEND INCR DECR INCRBY DECRBY INCRBYFLOAT SETRANGE SETBIT BITFIELD', 1)
add('write', 'EXPIRE PEXPIRE EXPIREAT PEXPIREAT PERSIST MOVE RESTORE HSET HSETNX HMSET HDEL HINCRBY HINCRBYFLOAT', 1)
add('write', 'LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LSET LREM LTRIM LINSERT SADD SREM SPOP ZADD ZREM ZINCRBY ZPOPMIN ZPOPMAX', 1)
add('write', 'ZREMRANGEBYSCORE ZREMRANGEBYRANK ZREMRANGEBYLEX PFADD GEOADD XADD XDEL XTRIM XSETID XACK XCLAIM XAUTOCLAIM SORT', 1)
add('write', 'ZUNIONSTORE ZINTERSTORE ZDIFFSTORE GEORADIUS GEORADIUSBYMEMBER GEOSEARCHSTORE', 1)
add('write', 'RENAME RENAMENX COPY RPOPLPUSH LMOVE SMOVE ZRANGESTORE', 1, 2)
add('write', 'DEL UNLINK SINTERSTORE SUNIONSTORE SDIFFSTORE PFMERGE', 1, -1)
add('write', 'BITOP', 2, -1)
add('write', 'MSET MSETNX', 1, -1, 2)
add('write', 'EVAL EVALSHA EVAL_RO EVALSHA_RO FCALL FCALL_RO', 0, 0, 1, { numkeysAt: 2 })
add('write', 'LMPOP ZMPOP SINTERCARD ZINTERCARD ZUNION ZINTER ZDIFF', 0, 0, 1, { numkeysAt: 1 })
add('write', 'XGROUP', 2)
add('flush', 'FLUSHDB FLUSHALL SWAPDB')
// Connection state that cannot live on a shared connection.
add('stateful', 'MULTI WATCH BLPOP BRPOP BRPOPLPUSH BLMOVE BLMPOP BZPOPMIN BZPOPMAX BZMPOP SUBSCRIBE PSUBSCRIBE SSUBSCRIBE')
add('stateful', 'MONITOR WAIT WAITAOF SYNC PSYNC REPLCONF XREAD XREADGROUP UNSUBSCRIBE PUNSUBSCRIBE SUNSUBSCRIBE')
// Answered (or routed) by the proxy itself.
add('proxy', 'HELLO AUTH SELECT QUIT RESET CLIENT')
add('proxy', 'CACHE.TAG CACHE.INVALIDATE CACHE.STATS CACHE.HOTKEYS CACHE.FLUSH')

/**
 * Administrative commands, refused unless the policy allows them: Redis 7.0's @admin category
 * (`ACL CAT admin`), plus FLUSHALL, which empties every database of every client. Entries are
 * `name` or `name|subcommand`, as Redis's ACL writes them.
 */
export const ADMIN_COMMANDS: ReadonlySet<string> = new Set(
  `BGREWRITEAOF BGSAVE DEBUG FAILOVER LASTSAVE MONITOR PFDEBUG PFSELFTEST PSYNC REPLCONF REPLICAOF ROLE SAVE SHUTDOWN SLAVEOF SYNC FLUSHALL
  ACL|DELUSER ACL|DRYRUN ACL|GETUSER ACL|LIST ACL|LOAD ACL|LOG ACL|SAVE ACL|SETUSER ACL|USERS
  CLIENT|KILL CLIENT|LIST CLIENT|NO-EVICT CLIENT|PAUSE CLIENT|UNBLOCK CLIENT|UNPAUSE
  CONFIG|GET CONFIG|RESETSTAT CONFIG|REWRITE CONFIG|SET
  LATENCY|DOCTOR LATENCY|GRAPH LATENCY|HISTOGRAM LATENCY|HISTORY LATENCY|LATEST LATENCY|RESET
  MODULE|LIST MODULE|LOAD MODULE|LOADEX MODULE|UNLOAD SLOWLOG|GET SLOWLOG|LEN SLOWLOG|RESET
  CLUSTER|ADDSLOTS CLUSTER|ADDSLOTSRANGE CLUSTER|BUMPEPOCH CLUSTER|COUNT-FAILURE-REPORTS CLUSTER|DELSLOTS CLUSTER|DELSLOTSRANGE
  CLUSTER|FAILOVER CLUSTER|FLUSHSLOTS CLUSTER|FORGET CLUSTER|MEET CLUSTER|REPLICAS CLUSTER|REPLICATE CLUSTER|RESET
  CLUSTER|SAVECONFIG CLUSTER|SET-CONFIG-EPOCH CLUSTER|SETSLOT CLUSTER|SLAVES`
    .split(/\s+/)
    .filter(Boolean),
)

/**
 * CLIENT subcommands whose answer or effect depends on which connection sends them: the client
 * gets a dedicated connection first, so that its id, name, tracking and kills are its own.
 */
const CLIENT_PINNED = new Set(['ID', 'INFO', 'LIST', 'SETNAME', 'KILL', 'TRACKING', 'TRACKINGINFO', 'GETREDIR', 'CACHING', 'REPLY', 'NO-EVICT', 'NO-TOUCH'])

/** How the proxy handles a CLIENT subcommand for a client on shared connections. */
export function clientSubcommand(sub: string): 'pin' | 'getname' | 'forward' {
  if (sub === 'GETNAME') return 'getname'
  return CLIENT_PINNED.has(sub) ? 'pin' : 'forward'
}

/** The spec of a command name as sent (any case), or undefined for commands the proxy does not know. */
export function lookupCommand(name: string): CommandSpec | undefined {
  return table.get(name) ?? table.get(name.toUpperCase())
}

export function isCacheableCommand(name: string): boolean {
  return table.get(name.toUpperCase())?.cacheable === true
}

export function isKnownCommand(name: string): boolean {
  return table.has(name.toUpperCase())
}

/** Key argument indexes of a command with `argc` arguments (the name is argument 0). */
export function keyIndexes(spec: CommandSpec, argc: number, numkeys: (i: number) => number): number[] {
  const out: number[] = []
  if (spec.numkeysAt > 0) {
    if (argc <= spec.numkeysAt) return out
    const n = numkeys(spec.numkeysAt)
    if (!(n > 0)) return out
    for (let i = spec.numkeysAt + 1; i <= spec.numkeysAt + n && i < argc; i++) out.push(i)
    return out
  }
  if (spec.first === 0 || spec.first >= argc) return out
  const last = spec.last === -1 ? argc - 1 : spec.last === -2 ? argc - 2 : Math.min(spec.last, argc - 1)
  for (let i = spec.first; i <= last; i += spec.step) out.push(i)
  return out
}

/** A synthetic spec for a command the table does not list: forwarded, and its first argument treated as written. */
export function unknownCommand(name: string): CommandSpec {
  return { name: name.toUpperCase(), kind: 'write', first: 1, last: 1, step: 1, numkeysAt: 0, cacheable: false, container: false }
}
