/**
 * The caller, from token claims as Azure copies them into AuditEvent records (`identity.claim`) and
 * ARM events (`data.claims`). Current records use short names (`oid`, `upn`, `appid`, `idtyp`); older
 * ones and ARM events use URI names; both are read (facts §4.4, §5.1).
 */
import type { Caller } from './model';
import { cleanText, own } from './untrusted';

const OID = ['oid', 'http://schemas.microsoft.com/identity/claims/objectidentifier'];
const UPN = [
  'upn',
  'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn',
  'unique_name',
  'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name',
];
const APP_ID = ['appid', 'azp'];
const IDTYP = ['idtyp'];
const IP = ['ipaddr'];
const NAME = ['name'];

function firstClaim(claims: unknown, names: readonly string[], max: number): string | undefined {
  for (const name of names) {
    const v = cleanText(own(claims, name), max);
    if (v !== undefined) return v;
  }
  return undefined;
}

/** Drops undefined fields; `undefined` when nothing is left. */
export function compactCaller(caller: Caller): Caller | undefined {
  const out: Caller = {};
  for (const [k, v] of Object.entries(caller) as Array<[keyof Caller, string | undefined]>) {
    if (v !== undefined) out[k] = v;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Caller from a claims object plus what the envelope knows (IP, user agent). */
export function callerFromClaims(
  claims: unknown,
  extra: { ipAddress?: unknown; userAgent?: unknown } = {},
): Caller | undefined {
  return compactCaller({
    oid: firstClaim(claims, OID, 128),
    upn: firstClaim(claims, UPN, 256),
    appId: firstClaim(claims, APP_ID, 128),
    idtyp: firstClaim(claims, IDTYP, 16),
    ipAddress: cleanText(extra.ipAddress, 64) ?? firstClaim(claims, IP, 64),
    userAgent: cleanText(extra.userAgent, 512, true),
    displayName: firstClaim(claims, NAME, 256),
  });
}

/** A caller is *known* when its identity is: an object id, an app id or a UPN (an IP alone is not). */
export function isCallerKnown(caller: Caller | undefined): boolean {
  return (
    caller !== undefined &&
    (caller.oid !== undefined || caller.appId !== undefined || caller.upn !== undefined)
  );
}

/** Merges enrichment into what the signal said; the signal's own values win. */
export function mergeCallers(signal: Caller | undefined, enriched: Caller | undefined): Caller | undefined {
  if (signal === undefined) return enriched;
  if (enriched === undefined) return signal;
  return compactCaller({ ...enriched, ...compactCaller(signal) });
}

/** The best single name for a caller in a sentence: UPN, else app id, else object id. */
export function callerLabel(caller: Caller | undefined): string {
  if (caller === undefined) return 'an unidentified caller';
  if (caller.upn !== undefined) return caller.upn;
  if (caller.displayName !== undefined && caller.appId !== undefined)
    return `${caller.displayName} (app ${caller.appId})`;
  if (caller.appId !== undefined) return `app ${caller.appId}`;
  if (caller.oid !== undefined) return `principal ${caller.oid}`;
  return 'an unidentified caller';
}
