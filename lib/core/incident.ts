/**
 * Design §2 step 4: incident keys and the two-minute attach rule. A key deletion is keyed by (vault,
 * key, `deletedDate` read in *observe*): every signal about the same deletion (sweep, forwarder,
 * log alert, redelivery, replay) lands on the same incident. Event Grid ids never key a deletion:
 * delivery is at least once and ids can collide.
 *
 * Ids are readable and safe as Azure Table RowKeys: only `[a-z0-9._-]` (names are validated, times
 * are compacted, free-form parts such as event ids are hashed), at most ~200 characters.
 */
import { stableHash } from './hash';
import { isValidKeyName, isValidVaultName } from './identifiers';
import type { AlertKind, IncidentKey, IncidentKind, VaultTrigger } from './model';
import { parseInstant } from './time';

/** A signal attaches to a key incident whose `deletedDate` lies within this of the signal's time. */
export const ATTACH_WINDOW_MS = 2 * 60 * 1000;

/** `2026-01-02T03:04:05.678Z` → `20260102t030405.678z`. */
function compactTime(value: Date | string): string {
  const ms = parseInstant(value);
  if (ms === undefined) throw new Error('incident time is not a valid instant');
  return new Date(ms).toISOString().replace(/[-:]/g, '').toLowerCase();
}

/** A free-form part (event id, object id): kept when already safe and short, else hashed. */
function safePart(value: string | undefined): string {
  if (value === undefined || value === '') return 'none';
  const lower = value.toLowerCase();
  return /^[a-z0-9-]{1,64}$/.test(lower) ? lower : `h${stableHash([value], 24)}`;
}

function vaultPart(vaultName: string): string {
  if (!isValidVaultName(vaultName)) throw new Error('incident vault name is not a valid vault name');
  return vaultName.toLowerCase();
}

function keyPart(keyName: string): string {
  if (!isValidKeyName(keyName)) throw new Error('incident key name is not a valid key name');
  // Key Vault object names are case-insensitive.
  return keyName.toLowerCase();
}

function key(kind: IncidentKind, vaultName: string, id: string): IncidentKey {
  return { kind, partitionKey: vaultPart(vaultName), id };
}

/** (vault, `key`, name, `deletedDate`). Throws on invalid names or times (programming errors). */
export function keyDeletionIncident(
  vaultName: string,
  keyName: string,
  deletedDate: Date | string,
): IncidentKey {
  return key(
    'key-deletion',
    vaultName,
    `key_${vaultPart(vaultName)}_${keyPart(keyName)}_${compactTime(deletedDate)}`,
  );
}

/** (vault, `vault`, deletion date). */
export function vaultDeletionIncident(vaultName: string, deletionDate: Date | string): IncidentKey {
  return key('vault-deletion', vaultName, `vault_${vaultPart(vaultName)}_${compactTime(deletionDate)}`);
}

/**
 * Access-policy changes by the event id. No longer what `incidentKeyFor` uses (one change raises two
 * events, see `accessPolicyChangeIncident`); kept for incidents already in the ledger under it.
 */
export function accessPolicyIncident(vaultName: string, eventId: string): IncidentKey {
  return key('access-policy', vaultName, `policy_${vaultPart(vaultName)}_${safePart(eventId)}`);
}

/**
 * Which of the two events of one access-policy change a trigger came from: the Key Vault system event
 * (`keyVault`, no caller) or ARM's write event for `Microsoft.KeyVault/vaults/accessPolicies/write`
 * (`arm`, with the caller). Read from the operation name, which normalise sets to one or the other.
 */
export type AccessPolicyOrigin = 'keyVault' | 'arm';

export function accessPolicyOrigin(trigger: { operationName: string }): AccessPolicyOrigin {
  return /\/accesspolicies\/write$/i.test(trigger.operationName) ? 'arm' : 'keyVault';
}

/**
 * An access-policy change, keyed by (vault, the time of the event that opened it, its origin). One
 * change raises two events seconds apart (the system event and ARM's), neither naming the other: the
 * second finds the incident through `findAccessPolicyIncident`, not through its key. Redeliveries of
 * the first event carry the same time, so they claim the same key.
 */
export function accessPolicyChangeIncident(
  vaultName: string,
  changeTime: Date | string,
  origin: AccessPolicyOrigin,
): IncidentKey {
  return key(
    'access-policy',
    vaultName,
    `policy_${vaultPart(vaultName)}_${compactTime(changeTime)}_${origin === 'arm' ? 'arm' : 'kv'}`,
  );
}

/** The id prefix of a vault's access-policy incidents (for `Ledger.list`). */
export function accessPolicyIncidentPrefix(vaultName: string): string {
  return `policy_${vaultPart(vaultName)}_`;
}

/** What `findAccessPolicyIncident` needs to know of an access-policy incident. */
export interface AccessPolicyIncidentRef {
  id: string;
  vaultName: string;
  /** The time of each event of the change the incident has seen, by origin. */
  events: Partial<Record<AccessPolicyOrigin, string>>;
}

/**
 * The incident an access-policy event belongs to. `sameEvent`: the incident has seen this very event
 * (same origin, same time: a redelivery or a replay), so it is a duplicate or resumes it. Otherwise the
 * nearest incident within the attach window that has seen only the *other* event of a change: this
 * event is that change's second event (it may bring the caller). An incident that already has an event
 * of this origin belongs to another change; `undefined` means a change of its own.
 */
export function findAccessPolicyIncident<I extends AccessPolicyIncidentRef>(
  incidents: ReadonlyArray<I>,
  event: { vaultName: string; origin: AccessPolicyOrigin; signalTime: Date | string },
): { incident: I; sameEvent: boolean } | undefined {
  const at = parseInstant(event.signalTime);
  if (at === undefined) return undefined;
  const vault = event.vaultName.toLowerCase();
  const other: AccessPolicyOrigin = event.origin === 'arm' ? 'keyVault' : 'arm';
  let best: { incident: I; distance: number } | undefined;
  for (const incident of incidents) {
    if (incident.vaultName.toLowerCase() !== vault) continue;
    const mine = incident.events[event.origin];
    if (mine !== undefined) {
      if (parseInstant(mine) === at) return { incident, sameEvent: true };
      continue;
    }
    const theirs = incident.events[other];
    const theirsMs = theirs === undefined ? undefined : parseInstant(theirs);
    if (theirsMs === undefined) continue;
    const distance = Math.abs(theirsMs - at);
    if (distance > ATTACH_WINDOW_MS) continue;
    if (best === undefined || distance < best.distance) best = { incident, distance };
  }
  return best && { incident: best.incident, sameEvent: false };
}

/** Vault writes: by the event id, like access-policy changes. */
export function vaultWriteIncident(vaultName: string, eventId: string): IncidentKey {
  return key('vault-write', vaultName, `vaultwrite_${vaultPart(vaultName)}_${safePart(eventId)}`);
}

/** A refused deletion: (vault, key, record time, caller oid). */
export function deniedDeletionIncident(
  vaultName: string,
  keyName: string,
  recordTime: Date | string,
  callerOid: string | undefined,
): IncidentKey {
  return key(
    'delete-denied',
    vaultName,
    `denied_${vaultPart(vaultName)}_${keyPart(keyName)}_${compactTime(recordTime)}_${safePart(callerOid)}`,
  );
}

/**
 * A purge: (vault, key, record time). The purged key cannot be observed any more, so there is no
 * `deletedDate` to key it by; a purge is its own incident.
 */
export function keyPurgeIncident(vaultName: string, keyName: string, recordTime: Date | string): IncidentKey {
  return key(
    'key-purge',
    vaultName,
    `purge_${vaultPart(vaultName)}_${keyPart(keyName)}_${compactTime(recordTime)}`,
  );
}

/** The id prefix of every purge incident of one key (for `Ledger.list`). */
export function keyPurgeIncidentPrefix(vaultName: string, keyName: string): string {
  return `purge_${vaultPart(vaultName)}_${keyPart(keyName)}_`;
}

/** The id prefix of every deletion incident of one key (for `Ledger.list`). */
export function keyIncidentPrefix(vaultName: string, keyName: string): string {
  return `key_${vaultPart(vaultName)}_${keyPart(keyName)}_`;
}

export type IncidentKeyResult =
  { ok: true; key: IncidentKey } | { ok: false; needs: 'deletedDate' | 'deletionDate'; message: string };

/**
 * The incident key for a trigger, given what *observe* read: a key deletion needs the key's
 * `deletedDate` (a sweep row carries it), a vault deletion the vault's `deletionDate`.
 */
export function incidentKeyFor(
  trigger: VaultTrigger,
  observed: { deletedDate?: Date | string; deletionDate?: Date | string } = {},
): IncidentKeyResult {
  switch (trigger.kind) {
    case 'keyDeleted':
    case 'sweptDeletedKey': {
      const deletedDate =
        observed.deletedDate ?? (trigger.kind === 'sweptDeletedKey' ? trigger.deletedDate : undefined);
      if (deletedDate === undefined || parseInstant(deletedDate) === undefined) {
        return {
          ok: false,
          needs: 'deletedDate',
          message: 'a key deletion incident is keyed by the deletedDate observe reads',
        };
      }
      return { ok: true, key: keyDeletionIncident(trigger.vaultName, trigger.keyName, deletedDate) };
    }
    case 'keyPurged':
      return { ok: true, key: keyPurgeIncident(trigger.vaultName, trigger.keyName, trigger.signalTime) };
    case 'keyDeleteDenied':
      return {
        ok: true,
        key: deniedDeletionIncident(
          trigger.vaultName,
          trigger.keyName,
          trigger.signalTime,
          trigger.caller?.oid,
        ),
      };
    case 'vaultDeleted':
    case 'sweptDeletedVault': {
      const deletionDate =
        observed.deletionDate ?? (trigger.kind === 'sweptDeletedVault' ? trigger.deletionDate : undefined);
      if (deletionDate === undefined || parseInstant(deletionDate) === undefined) {
        return {
          ok: false,
          needs: 'deletionDate',
          message: 'a vault deletion incident is keyed by the deletionDate ARM reports',
        };
      }
      return { ok: true, key: vaultDeletionIncident(trigger.vaultName, deletionDate) };
    }
    case 'vaultWritten':
      return { ok: true, key: vaultWriteIncident(trigger.vaultName, trigger.eventId) };
    case 'accessPolicyChanged':
      // By vault and time, not the event id: the two events of one change must be able to meet.
      return {
        ok: true,
        key: accessPolicyChangeIncident(trigger.vaultName, trigger.signalTime, accessPolicyOrigin(trigger)),
      };
  }
}

/** What the attach rule needs to know of an existing key incident. */
export interface KeyIncidentRef {
  id: string;
  vaultName: string;
  keyName: string;
  /** The `deletedDate` the incident is keyed by. */
  deletedDate: Date | string;
}

/**
 * A signal whose key is no longer deleted attaches to the latest incident for that vault and key
 * whose `deletedDate` lies within two minutes (inclusive) of the signal's time; `undefined` means
 * none (the caller records it as `already-active`).
 */
export function findAttachable<I extends KeyIncidentRef>(
  incidents: ReadonlyArray<I>,
  keyRef: { vaultName: string; keyName: string },
  signalTime: Date | string,
): I | undefined {
  const at = parseInstant(signalTime);
  if (at === undefined) return undefined;
  const vault = keyRef.vaultName.toLowerCase();
  const name = keyRef.keyName.toLowerCase();
  let best: { incident: I; deletedMs: number } | undefined;
  for (const incident of incidents) {
    if (incident.vaultName.toLowerCase() !== vault || incident.keyName.toLowerCase() !== name) continue;
    const deletedMs = parseInstant(incident.deletedDate);
    if (deletedMs === undefined || Math.abs(deletedMs - at) > ATTACH_WINDOW_MS) continue;
    if (best === undefined || deletedMs > best.deletedMs) best = { incident, deletedMs };
  }
  return best?.incident;
}

/** `<incident>/primary` or `<incident>/attribution`. */
export function alertId(incidentId: string, kind: AlertKind): string {
  return `${incidentId}/${kind}`;
}
