// One login (an oidc-provider Grant and its refresh token family) as one
// Redis string, and the Lua scripts that change it atomically.
//
// A string rather than a hash: a hash with any value over 64 bytes leaves
// Redis's compact encoding and costs ~90 bytes per field, which a login's
// tombstones would multiply. Five lines ('\n' never occurs in any of them:
// JSON escapes it, the rest is base64url, digits and ':'):
//
//   1  SHA-256 of the live refresh token ('' before the first one)
//   2  grace record of the latest rotation, REFRESH_REUSE_GRACE_SECONDS only:
//      "<hash of the consumed token>:<consumed at, ms>:<successor, sealed
//      under the consumed token>" (src/tokens/refresh-grace.ts), else ''
//   3  tombstones of consumed refresh tokens, 26 characters each: the first
//      16 characters of the token's hash and its expiry (10 digits, epoch
//      seconds); each is dropped once its token would have expired anyway,
//      and beyond MAX_TOMBSTONES the oldest go first (a client rotating one
//      login thousands of times cannot grow it, or the script's work, without
//      bound; such an old token is then refused without revoking the login)
//   4  the live refresh token's payload (JSON, without what line 5 says)
//   5  the Grant payload (JSON, with its session stamp)
//
// The key expires with the live refresh token (a login without one with its
// access token): nothing outlives what it is needed for.

export const TOMBSTONE_HASH = 16;
const TOMBSTONE = TOMBSTONE_HASH + 10;
export const MAX_TOMBSTONES = 1024;

export type LoginRecord = { liveHash: string; grace: string; tombstones: string; live: string; grant: string };

export function formatLogin(r: LoginRecord): string {
  return [r.liveHash, r.grace, r.tombstones, r.live, r.grant].join('\n');
}

export function parseLogin(value: string | null | undefined): LoginRecord | undefined {
  if (!value) return undefined;
  const parts = value.split('\n');
  if (parts.length !== 5) return undefined;
  const [liveHash, grace, tombstones, live, grant] = parts as [string, string, string, string, string];
  return { liveHash, grace, tombstones, live, grant };
}

/** The expiry (epoch seconds) of the consumed token with this hash, if its tombstone is there. */
export function tombstoneOf(tombstones: string, hash: string): number | undefined {
  const prefix = hash.slice(0, TOMBSTONE_HASH);
  for (let i = 0; i + TOMBSTONE <= tombstones.length; i += TOMBSTONE) {
    if (tombstones.slice(i, i + TOMBSTONE_HASH) === prefix) return Number(tombstones.slice(i + TOMBSTONE_HASH, i + TOMBSTONE));
  }
  return undefined;
}

/** When the grace record names this hash: the time (ms) it was consumed. */
export function graceConsumedAt(grace: string, hash: string): number | undefined {
  return grace.startsWith(`${hash}:`) ? Number(grace.split(':')[1]) : undefined;
}

const PARSE = `
local function parse(v)
  if not v then return nil end
  return string.match(v, '^([^\\n]*)\\n([^\\n]*)\\n([^\\n]*)\\n([^\\n]*)\\n(.*)$')
end`;

/**
 * ROTATE KEYS[1]=login; ARGV: presented hash, successor hash, successor
 * payload, successor expiry (s), deadline (ms), grace window (ms, 0 = off),
 * sealed successor ('' = none), presented token's expiry (s).
 * {'ok'}: consumed and replaced in one step. {'late'}: Redis ran it after the
 * deadline (it was stalled): nothing done. {'gone'}: no such live or
 * consumed token. {'grace', sealed}: the immediate predecessor within the
 * window: nothing done. {'reused', grant}: a consumed token: login deleted.
 */
export const ROTATE = `${PARSE}
local t = redis.call('TIME')
local nowS = tonumber(t[1])
local nowMs = nowS * 1000 + math.floor(tonumber(t[2]) / 1000)
if nowMs > tonumber(ARGV[5]) then return {'late'} end
local rh, gs, ts, rp, g = parse(redis.call('GET', KEYS[1]))
if not rh then return {'gone'} end
local h = string.sub(ARGV[1], 1, ${TOMBSTONE_HASH})
if rh == ARGV[1] then
  local kept = {}
  for i = 1, #ts - ${TOMBSTONE - 1}, ${TOMBSTONE} do
    local rec = string.sub(ts, i, i + ${TOMBSTONE - 1})
    if tonumber(string.sub(rec, ${TOMBSTONE_HASH + 1})) > nowS then kept[#kept + 1] = rec end
  end
  kept[#kept + 1] = h .. string.format('%010d', tonumber(ARGV[8]))
  if #kept > ${MAX_TOMBSTONES} then kept = {unpack(kept, #kept - ${MAX_TOMBSTONES - 1})} end
  local grace = ''
  if ARGV[7] ~= '' then grace = ARGV[1] .. ':' .. nowMs .. ':' .. ARGV[7] end
  redis.call('SET', KEYS[1], ARGV[2] .. '\\n' .. grace .. '\\n' .. table.concat(kept) .. '\\n' .. ARGV[3] .. '\\n' .. g, 'EXAT', ARGV[4])
  return {'ok'}
end
local consumed = false
for i = 1, #ts - ${TOMBSTONE - 1}, ${TOMBSTONE} do
  if string.sub(ts, i, i + ${TOMBSTONE_HASH - 1}) == h then consumed = true break end
end
if not consumed then return {'gone'} end
if gs ~= '' and tonumber(ARGV[6]) > 0 then
  local gh, at, sealed = string.match(gs, '^([^:]+):(%d+):(.*)$')
  if gh == ARGV[1] and nowMs - tonumber(at) <= tonumber(ARGV[6]) then return {'grace', sealed} end
end
redis.call('DEL', KEYS[1])
return {'reused', g}`;

/**
 * UNDO KEYS[1]=login; ARGV: presented hash, successor hash, presented
 * payload. Puts the presented token back in place of a successor that could
 * not be replicated (WAIT); 0 when the successor is no longer the live one.
 */
export const UNDO = `${PARSE}
local rh, gs, ts, rp, g = parse(redis.call('GET', KEYS[1]))
if rh ~= ARGV[2] then return 0 end
local h = string.sub(ARGV[1], 1, ${TOMBSTONE_HASH})
local kept = {}
for i = 1, #ts - ${TOMBSTONE - 1}, ${TOMBSTONE} do
  local rec = string.sub(ts, i, i + ${TOMBSTONE - 1})
  if string.sub(rec, 1, ${TOMBSTONE_HASH}) ~= h then kept[#kept + 1] = rec end
end
redis.call('SET', KEYS[1], ARGV[1] .. '\\n\\n' .. table.concat(kept) .. '\\n' .. ARGV[3] .. '\\n' .. g, 'KEEPTTL')
return 1`;

/** ISSUE KEYS[1]=login; ARGV: hash, payload, expiry (s). A login's first refresh token; 0 when the login is gone. */
export const ISSUE = `${PARSE}
local rh, gs, ts, rp, g = parse(redis.call('GET', KEYS[1]))
if not rh then return 0 end
redis.call('SET', KEYS[1], ARGV[1] .. '\\n' .. gs .. '\\n' .. ts .. '\\n' .. ARGV[2] .. '\\n' .. g, 'EXAT', ARGV[3])
return 1`;

/** REVOKE KEYS[1]=login: deletes it; returns its Grant payload ('' when it was gone). */
export const REVOKE = `${PARSE}
local rh, gs, ts, rp, g = parse(redis.call('GET', KEYS[1]))
redis.call('DEL', KEYS[1])
return g or ''`;
