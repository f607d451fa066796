/**
 * Posture reconciliation (design §3): for each subscription in scope, the desired state of
 * lib/posture/desired.ts is compared with what ARM says, item by item, in this order:
 *
 *  1. Defender for Cloud plans (first: JIT depends on Defender for Servers P2);
 *  2. just-in-time VM access for the VMs the selector matches: the desired port rules are merged
 *     into the policy that already lists the VM, else into `default` in the VM's resource group and
 *     region; every other VM's entry, and the VM's other ports, are kept; blocked without P2;
 *  3. each vault's diagnostic setting `kvguard-audit` (AuditEvent to the region's Event Hub and to the
 *     workspace, `Dedicated`); a sink another setting already feeds with AuditEvent counts (Azure
 *     refuses a second setting with the same category and sink), so `kvguard-audit` only carries the
 *     sinks nothing else covers; a region without a hub is reported;
 *  4. purge protection on each vault;
 *  5. the built-in policy "Key vaults should have deletion protection enabled" at the scope;
 *  6. VNet flow logs to the region's storage account (a region without one is reported);
 *  7. auto-provisioning, reported only (it drives the retired Log Analytics agent);
 *  8. Defender alerts that name Key Vault resources, each forwarded to the sinks once (ledger row).
 *
 * Every item yields plan entries `{subscription, resource, item, current, desired, why, action}`.
 * `report` writes nothing to Azure; `enforce` applies each change and checks it against the write's
 * own answer, with no read-back (see `settle`): each resource type is read once per subscription
 * (diagnostic settings once per vault, paged lists page by page), and written once per change.
 * Subscriptions and resources run with bounded concurrency; the SDK waits out 429s (`Retry-After`);
 * one resource's failure is an entry, never the end of the run. One drift report per run goes to the
 * alert sinks (kind `drift`) when there was drift or a failure.
 */
import { sendToSinks } from '../alerting';
import { createHash } from 'node:crypto';
import pLimit from 'p-limit';
import type { Logger } from 'pino';
import type {
  AlertMessage,
  AlertSink,
  ArmResult,
  CallFailure,
  Clock,
  Ledger,
  VaultFacts,
  VaultManagement,
} from '../ports';
import {
  DELETION_PROTECTION_POLICY_ID,
  DELETION_PROTECTION_POLICY_NAME,
  isoDurationMinutes,
  settingsFor,
  type DesiredState,
  type DiagnosticsSettings,
  type FlowLogSettings,
  type JitPortSettings,
  type JitSettings,
  type PolicySettings,
  type PostureSettings,
} from './desired';
import type {
  DiagnosticSettingFacts,
  FlowLogFacts,
  JitPolicyFacts,
  JitPortRule,
  JitVirtualMachine,
  NetworkWatcherFacts,
  PostureArm,
  PricingState,
  SecurityAlertFacts,
  VmFacts,
} from './ports';

export type PostureItem =
  | 'defenderPlan'
  | 'jit'
  | 'diagnostics'
  | 'purgeProtection'
  | 'policy'
  | 'flowLogs'
  | 'autoProvisioning'
  | 'defenderAlerts';

export type PlanAction = 'none' | 'change' | 'blocked' | 'failed';

export interface PlanEntry {
  subscription: string;
  /** The ARM id (or scope) the entry is about. */
  resource: string;
  item: PostureItem;
  current: unknown;
  desired: unknown;
  why: string;
  action: PlanAction;
  /** `enforce`: the change was applied and the write's answer shows the desired state. */
  applied?: boolean;
}

export interface PostureReport {
  runId: string;
  mode: 'report' | 'enforce';
  startedAt: string;
  finishedAt: string;
  subscriptions: string[];
  entries: PlanEntry[];
  counts: Record<PlanAction, number>;
  /** Defender alerts sent to the sinks during this run. */
  alertsForwarded: number;
  /** Differences or failures: a drift report went to the sinks. */
  drift: boolean;
}

/** The ledger row of a forwarded Defender alert (partition `defender-alerts`). */
export interface ForwardedAlert {
  alertId: string;
  firstSeen: string;
  sentAt?: string;
}

export interface ReconcilerDeps {
  arm: PostureArm;
  vaults: VaultManagement;
  ledger: Ledger<ForwardedAlert>;
  sinks: AlertSink[];
  clock: Clock;
  log: Logger;
  /** Subscriptions, and resources within one item, worked on at once. */
  concurrency: number;
  /** Vaults left alone (names, hosts, URIs or resource ids; config `KVGUARD_EXCLUDED_VAULTS`). */
  excludedVaults: string[];
}

export const DIAGNOSTIC_SETTING_NAME = 'kvguard-audit';
/** At most 24 characters (the limit at management-group scope). */
export const POLICY_ASSIGNMENT_NAME = 'kvguard-kv-deletion';
export const ALERT_PARTITION = 'defender-alerts';

const eq = (a: string | undefined, b: string | undefined) =>
  (a ?? '').toLowerCase() === (b ?? '').toLowerCase();

function describe(failure: CallFailure): string {
  switch (failure.kind) {
    case 'forbidden':
      return `forbidden (403): the identity lacks ${failure.missingPermission}`;
    case 'throttled':
      return 'throttled (429) after the SDK retries';
    default:
      return `HTTP ${failure.status}: ${failure.detail}`;
  }
}

/** Runs `fn` over `items`, at most `limit` at a time, keeping the order of the results. */
function mapLimit<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const run = pLimit(Math.max(1, limit));
  return Promise.all(items.map((item) => run(() => fn(item))));
}

// ---------------------------------------------------------------------------------------------
// Pure comparisons (exported for the unit tests)
// ---------------------------------------------------------------------------------------------

export function vmMatchesSelector(vm: VmFacts, selector: JitSettings['selector']): boolean {
  if ('all' in selector) return true;
  if ('resourceGroups' in selector) return selector.resourceGroups.some((rg) => eq(rg, vm.resourceGroup));
  const entry = Object.entries(vm.tags).find(([k]) => eq(k, selector.tag.name));
  return entry !== undefined && (selector.tag.value === undefined || entry[1] === selector.tag.value);
}

function prefixesOf(rule: Pick<JitPortRule, 'allowedSourceAddressPrefix' | 'allowedSourceAddressPrefixes'>) {
  const list =
    rule.allowedSourceAddressPrefixes ??
    (rule.allowedSourceAddressPrefix ? [rule.allowedSourceAddressPrefix] : []);
  return [...list].map((p) => p.toLowerCase()).sort();
}

export function toPortRule(p: JitPortSettings): JitPortRule {
  return {
    number: p.number,
    protocol: p.protocol,
    allowedSourceAddressPrefixes: [...p.allowedSourceAddressPrefixes],
    maxRequestAccessDuration: p.maxRequestAccessDuration,
  };
}

export function portRuleEquals(a: JitPortRule, b: JitPortRule): boolean {
  return (
    a.number === b.number &&
    a.protocol === b.protocol &&
    JSON.stringify(prefixesOf(a)) === JSON.stringify(prefixesOf(b)) &&
    isoDurationMinutes(a.maxRequestAccessDuration) === isoDurationMinutes(b.maxRequestAccessDuration)
  );
}

/** The VM's rules with each desired port replaced or added; its other ports are kept. */
export function mergePorts(current: JitPortRule[], desired: JitPortRule[]): JitPortRule[] {
  const byNumber = new Map(desired.map((d) => [d.number, d]));
  const kept = current.filter((c) => !byNumber.has(c.number));
  return [...kept, ...desired].sort((a, b) => a.number - b.number);
}

/**
 * The policy's VM list with `changes` (lower-cased VM id → the VM's id and its desired rules) merged
 * into it port by port; no VM is dropped, a VM's other ports are kept, and VMs the policy did not
 * list are appended.
 */
export function mergeVirtualMachines(
  current: JitVirtualMachine[],
  changes: Map<string, JitVirtualMachine>,
): JitVirtualMachine[] {
  const done = new Set<string>();
  const merged = current.map((vm) => {
    const change = changes.get(vm.id.toLowerCase());
    if (!change) return vm;
    done.add(vm.id.toLowerCase());
    return { ...vm, ports: mergePorts(vm.ports, change.ports) };
  });
  for (const [key, change] of changes)
    if (!done.has(key)) merged.push({ id: change.id, ports: mergePorts([], change.ports) });
  return merged;
}

const sendsAuditEvent = (s: DiagnosticSettingFacts) =>
  s.logs.some(
    (l) =>
      l.enabled &&
      (eq(l.category, 'AuditEvent') || eq(l.categoryGroup, 'audit') || eq(l.categoryGroup, 'allLogs')),
  );

export interface DiagnosticsPlan {
  /** Setting names already sending AuditEvent to each sink (besides kvguard-audit). */
  current: { workspace?: string; eventHub?: string; kvguardAudit?: Omit<DiagnosticSettingFacts, 'name'> };
  /** What `kvguard-audit` must carry; undefined when other settings cover every sink. */
  setting?: DiagnosticSettingFacts;
  /** `kvguard-audit` already carries what it must (or nothing is needed from it). */
  inPlace: boolean;
  compliant: boolean;
  blocked?: string;
}

/** What a vault's diagnostic settings lack, given the workspace and the region's hub (if any). */
export function planDiagnostics(
  settings: DiagnosticSettingFacts[],
  workspace: string | undefined,
  hub: { authorizationRuleId: string; name: string } | undefined,
): DiagnosticsPlan {
  const others = settings.filter((s) => !eq(s.name, DIAGNOSTIC_SETTING_NAME) && sendsAuditEvent(s));
  const mine = settings.find((s) => eq(s.name, DIAGNOSTIC_SETTING_NAME));
  const wsOther = workspace ? others.find((s) => eq(s.workspaceId, workspace)) : undefined;
  const hubOther = hub
    ? others.find(
        (s) => eq(s.eventHubAuthorizationRuleId, hub.authorizationRuleId) && eq(s.eventHubName, hub.name),
      )
    : undefined;
  const current: DiagnosticsPlan['current'] = {
    ...(wsOther ? { workspace: wsOther.name } : {}),
    ...(hubOther ? { eventHub: hubOther.name } : {}),
    ...(mine ? { kvguardAudit: (({ name: _n, ...rest }) => rest)(mine) } : {}),
  };
  let blocked: string | undefined;
  if (wsOther && wsOther.logAnalyticsDestinationType !== 'Dedicated') {
    blocked = `the setting '${wsOther.name}' sends AuditEvent to the workspace in AzureDiagnostics mode (records land in AzureDiagnostics, not AZKVAuditLogs), and Azure refuses a second setting with the same category and sink: switch '${wsOther.name}' to resource-specific (Dedicated) by hand`;
  }
  const wantWorkspace = workspace && !wsOther ? workspace : undefined;
  const wantHub = hub && !hubOther ? hub : undefined;
  if (!wantWorkspace && !wantHub)
    return { current, inPlace: true, compliant: !blocked, ...(blocked ? { blocked } : {}) };
  const setting: DiagnosticSettingFacts = {
    name: DIAGNOSTIC_SETTING_NAME,
    ...(wantWorkspace ? { workspaceId: wantWorkspace, logAnalyticsDestinationType: 'Dedicated' } : {}),
    ...(wantHub
      ? { eventHubAuthorizationRuleId: wantHub.authorizationRuleId, eventHubName: wantHub.name }
      : {}),
    logs: [{ category: 'AuditEvent', enabled: true }],
  };
  const mineOk =
    mine !== undefined &&
    sendsAuditEvent(mine) &&
    (!wantWorkspace ||
      (eq(mine.workspaceId, wantWorkspace) && mine.logAnalyticsDestinationType === 'Dedicated')) &&
    (!wantHub ||
      (eq(mine.eventHubAuthorizationRuleId, wantHub.authorizationRuleId) &&
        eq(mine.eventHubName, wantHub.name)));
  return {
    current,
    setting,
    inPlace: mineOk,
    compliant: mineOk && !blocked,
    ...(blocked ? { blocked } : {}),
  };
}

export function flowLogCompliant(f: FlowLogFacts, storageId: string, retentionDays: number): boolean {
  return (
    f.enabled &&
    eq(f.storageId, storageId) &&
    f.retentionDays === retentionDays &&
    f.retentionEnabled === retentionDays > 0
  );
}

export function isKeyVaultAlert(a: SecurityAlertFacts): boolean {
  // Defender for Key Vault alert types start with `KV_` (UNCONFIRMED as a rule); the resource ids are
  // what the alert names.
  return (
    a.resourceIds.some((id) => /\/providers\/Microsoft\.KeyVault\/vaults\/[^/]+$/i.test(id)) ||
    /^KV_/i.test(a.alertType)
  );
}

function isExcluded(vault: VaultFacts, excluded: string[]): boolean {
  const host = (() => {
    try {
      return new URL(vault.vaultUri).hostname.toLowerCase();
    } catch {
      return '';
    }
  })();
  return excluded.some((raw) => {
    const e = raw.trim().toLowerCase().replace(/\/+$/, '');
    return (
      e !== '' &&
      (e === vault.name.toLowerCase() ||
        e === host ||
        e === vault.id.toLowerCase() ||
        e === vault.vaultUri.toLowerCase().replace(/\/+$/, ''))
    );
  });
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

interface Ctx {
  deps: ReconcilerDeps;
  enforce: boolean;
  sub: string;
  entries: PlanEntry[];
  forwarded: { count: number };
}

function add(ctx: Ctx, e: Omit<PlanEntry, 'subscription'>): PlanEntry {
  const entry: PlanEntry = { subscription: ctx.sub, ...e };
  ctx.entries.push(entry);
  return entry;
}

function failed(
  ctx: Ctx,
  item: PostureItem,
  resource: string,
  what: string,
  failure: CallFailure,
): PlanEntry {
  return add(ctx, {
    resource,
    item,
    current: null,
    desired: null,
    why: `${what}: ${describe(failure)}`,
    action: 'failed',
  });
}

/**
 * Marks an entry applied, or failed with the reason (a write that failed or did not stick).
 *
 * A change is checked against the write's own answer, never by reading the resource back: an ARM
 * PUT/PATCH answers 200/201 with the resource as ARM stored it, after Azure Policy `modify`/`append`
 * effects were applied in the request pipeline, so a read straight after it tells nothing the answer
 * does not (and costs a call per change).
 */
function settle(entry: PlanEntry, result: { ok: true } | { ok: false; why: string }): void {
  if (result.ok) entry.applied = true;
  else {
    entry.action = 'failed';
    entry.applied = false;
    entry.why = `${entry.why}; not applied: ${result.why}`;
  }
}

export async function reconcilePosture(
  deps: ReconcilerDeps,
  desired: DesiredState,
  subscriptions: string[],
  runId: string,
): Promise<PostureReport> {
  const startedAt = deps.clock.now().toISOString();
  const mode = desired.mode;
  const entries: PlanEntry[] = [];
  const forwarded = { count: 0 };
  const policyScopes = new Set<string>();
  deps.log.info({ runId, mode, subscriptions: subscriptions.length }, 'posture reconciliation started');
  await mapLimit(subscriptions, deps.concurrency, async (sub) => {
    const ctx: Ctx = { deps, enforce: mode === 'enforce', sub, entries: [], forwarded };
    const settings = settingsFor(desired, sub);
    try {
      await reconcileSubscription(ctx, settings, policyScopes);
    } catch (error) {
      // A bug or an unexpected transport error: reported, and the other subscriptions go on.
      add(ctx, {
        resource: `/subscriptions/${sub}`,
        item: 'defenderPlan',
        current: null,
        desired: null,
        why: `the run for this subscription stopped: ${(error as Error).message}`,
        action: 'failed',
      });
    }
    entries.push(...ctx.entries);
  });
  entries.sort((a, b) => (a.subscription === b.subscription ? 0 : a.subscription < b.subscription ? -1 : 1));
  const counts: Record<PlanAction, number> = { none: 0, change: 0, blocked: 0, failed: 0 };
  for (const e of entries) counts[e.action]++;
  const drift = counts.change + counts.blocked + counts.failed > 0;
  const report: PostureReport = {
    runId,
    mode,
    startedAt,
    finishedAt: deps.clock.now().toISOString(),
    subscriptions,
    entries,
    counts,
    alertsForwarded: forwarded.count,
    drift,
  };
  const summary = { runId, mode, ...counts, alertsForwarded: forwarded.count };
  if (drift) {
    deps.log.warn({ ...summary, drift: entries.filter((e) => e.action !== 'none') }, 'posture drift');
    await sendDriftReport(deps, report);
  } else deps.log.info(summary, 'posture reconciliation: no drift');
  return report;
}

async function reconcileSubscription(ctx: Ctx, s: PostureSettings, policyScopes: Set<string>): Promise<void> {
  // JIT's listings do not depend on the plans: they are read while the plans are handled.
  const jitListings = s.jit ? listJit(ctx) : undefined;
  const p2 = s.defenderPlans ? await defenderPlans(ctx, s.defenderPlans) : await serversP2Only(ctx);
  if (s.jit) await jitFor(ctx, s.jit, p2, jitListings!);
  const needVaults = s.diagnostics || s.purgeProtection;
  let vaults: VaultFacts[] = [];
  if (needVaults) {
    const listed = await ctx.deps.vaults.listVaults(ctx.sub);
    if (!listed.ok) {
      failed(
        ctx,
        s.diagnostics ? 'diagnostics' : 'purgeProtection',
        `/subscriptions/${ctx.sub}`,
        'listing the vaults failed',
        listed.failure,
      );
    } else vaults = listed.value.filter((v) => !isExcluded(v, ctx.deps.excludedVaults));
  }
  if (s.diagnostics) await diagnosticsFor(ctx, s.diagnostics, vaults);
  if (s.purgeProtection) await purgeProtectionFor(ctx, vaults);
  if (s.policy) {
    const scope = (s.policy.scope ?? `/subscriptions/${ctx.sub}`).replace(/\/+$/, '');
    if (!policyScopes.has(scope.toLowerCase())) {
      policyScopes.add(scope.toLowerCase());
      await policyFor(ctx, s.policy, scope);
    }
  }
  if (s.flowLogs) await flowLogsFor(ctx, s.flowLogs);
  if (s.autoProvisioning) await autoProvisioningFor(ctx);
  if (s.defenderAlerts) await defenderAlertsFor(ctx);
}

// ---- 1. Defender plans -------------------------------------------------------------------------

type ServersP2 = 'on' | 'pending' | 'off';

/** `Standard/P2`, `Free`; `no tier` when ARM's answer named none. */
const planText = (p: PricingState) => `${p.tier || 'no tier'}${p.subPlan ? `/${p.subPlan}` : ''}`;

function p2State(pricings: PricingState[]): { state: ServersP2; current: string } {
  const vm = pricings.find((p) => eq(p.name, 'VirtualMachines'));
  const current = vm ? planText(vm) : 'not listed';
  return { state: vm && vm.tier === 'Standard' && eq(vm.subPlan, 'P2') ? 'on' : 'off', current };
}

/** Without a `defenderPlans` item, JIT still needs to know whether P2 is on. */
async function serversP2Only(ctx: Ctx): Promise<{ state: ServersP2; current: string } | undefined> {
  const listed = await ctx.deps.arm.listPricings(ctx.sub);
  return listed.ok ? p2State(listed.value) : undefined;
}

const planMatches = (cur: PricingState, want: { tier: string; subPlan?: string }) =>
  cur.tier === want.tier &&
  (want.tier === 'Free' || want.subPlan === undefined || eq(cur.subPlan, want.subPlan));

async function defenderPlans(
  ctx: Ctx,
  plans: NonNullable<PostureSettings['defenderPlans']>,
): Promise<{ state: ServersP2; current: string } | undefined> {
  const { arm } = ctx.deps;
  const base = `/subscriptions/${ctx.sub}/providers/Microsoft.Security/pricings`;
  const listed = await arm.listPricings(ctx.sub);
  if (!listed.ok) {
    failed(ctx, 'defenderPlan', base, 'listing the Defender plans failed', listed.failure);
    return undefined;
  }
  const pending: Array<{ entry: PlanEntry; name: string; want: { tier: string; subPlan?: string } }> = [];
  for (const [name, want] of Object.entries(plans)) {
    const cur = listed.value.find((p) => eq(p.name, name));
    const resource = `${base}/${cur?.name ?? name}`;
    if (!cur) {
      add(ctx, {
        resource,
        item: 'defenderPlan',
        current: null,
        desired: want,
        why: `the subscription lists no plan '${name}'`,
        action: 'failed',
      });
      continue;
    }
    const current = { tier: cur.tier, ...(cur.subPlan ? { subPlan: cur.subPlan } : {}) };
    if (planMatches(cur, want)) {
      add(ctx, {
        resource,
        item: 'defenderPlan',
        current,
        desired: want,
        why: 'the plan is as desired',
        action: 'none',
      });
      continue;
    }
    const entry = add(ctx, {
      resource,
      item: 'defenderPlan',
      current,
      desired: want,
      why: `Defender plan ${cur.name} is ${cur.tier}${cur.subPlan ? `/${cur.subPlan}` : ''}; desired ${want.tier}${want.subPlan ? `/${want.subPlan}` : ''}`,
      action: 'change',
    });
    pending.push({ entry, name: cur.name, want });
  }
  let after = listed.value;
  if (ctx.enforce && pending.length > 0) {
    // Each change is checked against the PUT's answer (see `settle`); the plans as they now stand are
    // the listing with those answers in place of the plans written.
    const written = new Map<string, PricingState>();
    for (const p of pending) {
      const r = await arm.updatePricing(ctx.sub, p.name, p.want);
      if (!r.ok) {
        settle(p.entry, { ok: false, why: describe(r.failure) });
        continue;
      }
      written.set(p.name.toLowerCase(), r.value);
      settle(
        p.entry,
        planMatches(r.value, p.want)
          ? { ok: true }
          : { ok: false, why: `the write's answer shows ${planText(r.value)}` },
      );
    }
    after = listed.value.map((x) => written.get(x.name.toLowerCase()) ?? x);
  }
  const p2 = p2State(after);
  if (!ctx.enforce && p2.state === 'off') {
    const want = Object.entries(plans).find(([n]) => eq(n, 'VirtualMachines'))?.[1];
    if (want && want.tier === 'Standard' && eq(want.subPlan, 'P2')) return { ...p2, state: 'pending' };
  }
  return p2;
}

// ---- 2. JIT ------------------------------------------------------------------------------------

interface PolicyGroup {
  resourceGroup: string;
  location: string;
  name: string;
  /** The policy's VMs as the subscription's listing showed them (none when it listed no such policy). */
  listed: JitVirtualMachine[];
  changes: Map<string, JitVirtualMachine>;
  entries: Array<{ entry: PlanEntry; vmId: string; desired: JitPortRule[] }>;
}

interface JitListings {
  vms: Promise<ArmResult<VmFacts[]>>;
  policies: Promise<ArmResult<JitPolicyFacts[]>>;
}

/** The subscription's VMs and JIT policies, both asked for at once. */
function listJit(ctx: Ctx): JitListings {
  const listings = {
    vms: ctx.deps.arm.listVirtualMachines(ctx.sub),
    policies: ctx.deps.arm.listJitPolicies(ctx.sub),
  };
  // Awaited later (jitFor); if the run for the subscription stops before, a rejection is not left unhandled.
  listings.vms.catch(() => undefined);
  listings.policies.catch(() => undefined);
  return listings;
}

async function jitFor(
  ctx: Ctx,
  jit: JitSettings,
  p2: { state: ServersP2; current: string } | undefined,
  listings: JitListings,
): Promise<void> {
  const { arm } = ctx.deps;
  const [vmsListed, policiesListed] = await Promise.all([listings.vms, listings.policies]);
  if (!vmsListed.ok) {
    failed(ctx, 'jit', `/subscriptions/${ctx.sub}`, 'listing the virtual machines failed', vmsListed.failure);
    return;
  }
  const vms = vmsListed.value.filter((vm) => vmMatchesSelector(vm, jit.selector));
  if (vms.length === 0) return;
  if (!policiesListed.ok) {
    failed(
      ctx,
      'jit',
      `/subscriptions/${ctx.sub}`,
      'listing the JIT policies failed',
      policiesListed.failure,
    );
    return;
  }
  const policies = policiesListed.value;
  const desiredRules = jit.ports.map(toPortRule);
  const groups = new Map<string, PolicyGroup>();
  // Each VM's policy and rules by VM id (the first policy listing it), not a scan per VM.
  const listedVms = new Map<string, { policy: JitPolicyFacts; ports: JitPortRule[] }>();
  for (const p of policies)
    for (const v of p.virtualMachines)
      if (!listedVms.has(v.id.toLowerCase()))
        listedVms.set(v.id.toLowerCase(), { policy: p, ports: v.ports });
  for (const vm of vms) {
    const listed = listedVms.get(vm.id.toLowerCase());
    const holder = listed?.policy;
    const currentRules = listed?.ports ?? [];
    const compliant = desiredRules.every((d) => currentRules.some((c) => portRuleEquals(c, d)));
    const current = holder ? { policy: holder.id, ports: currentRules } : { policy: null, ports: [] };
    if (compliant) {
      add(ctx, {
        resource: vm.id,
        item: 'jit',
        current,
        desired: { ports: desiredRules },
        why: 'the VM has the desired JIT rules',
        action: 'none',
      });
      continue;
    }
    const target = holder ?? { resourceGroup: vm.resourceGroup, location: vm.location, name: 'default' };
    const where = holder
      ? `merged into the policy '${holder.name}' that lists the VM`
      : `added to the 'default' policy of ${vm.resourceGroup}/${vm.location}`;
    let action: PlanAction = 'change';
    let why = `JIT rules for ports ${desiredRules.map((r) => r.number).join(', ')} differ; ${where}`;
    if (!p2) {
      action = 'failed';
      why += '; the Defender for Servers plan could not be read';
    } else if (p2.state === 'off') {
      action = 'blocked';
      why = `JIT needs Defender for Servers Plan 2 (VirtualMachines is ${p2.current}); ${why}`;
    } else if (p2.state === 'pending') {
      why += ' (after the VirtualMachines plan above is set to P2)';
    }
    const entry = add(ctx, {
      resource: vm.id,
      item: 'jit',
      current,
      desired: { ports: desiredRules },
      why,
      action,
    });
    if (action !== 'change') continue;
    const key = `${target.resourceGroup}|${target.location}|${target.name}`.toLowerCase();
    let group = groups.get(key);
    if (!group) {
      const policy =
        holder ??
        policies.find(
          (p) =>
            eq(p.resourceGroup, target.resourceGroup) &&
            eq(p.location, target.location) &&
            eq(p.name, target.name),
        );
      group = {
        resourceGroup: target.resourceGroup,
        location: target.location,
        name: target.name,
        listed: policy?.virtualMachines ?? [],
        changes: new Map(),
        entries: [],
      };
      groups.set(key, group);
    }
    group.changes.set(vm.id.toLowerCase(), { id: vm.id, ports: desiredRules });
    group.entries.push({ entry, vmId: vm.id, desired: desiredRules });
  }
  if (!ctx.enforce) return;
  await mapLimit([...groups.values()], ctx.deps.concurrency, async (g) => {
    // The changes are merged into the policy as the subscription's listing showed it, seconds ago: a
    // VM another writer put into the policy since then would be dropped by this PUT. The JIT API offers
    // no ETag to make the PUT conditional, so a GET right before it would only narrow that window, not
    // close it.
    const merged = mergeVirtualMachines(g.listed, g.changes);
    const put = await arm.putJitPolicy(ctx.sub, g.resourceGroup, g.location, g.name, merged);
    if (!put.ok) {
      for (const e of g.entries) settle(e.entry, { ok: false, why: describe(put.failure) });
      return;
    }
    // By id: a policy lists every VM of its resource group and region (hundreds), each checked here.
    const answered = new Map(put.value.virtualMachines.map((v) => [v.id.toLowerCase(), v]));
    for (const e of g.entries) {
      const vm = answered.get(e.vmId.toLowerCase());
      settle(
        e.entry,
        vm && e.desired.every((d) => vm.ports.some((c) => portRuleEquals(c, d)))
          ? { ok: true }
          : {
              ok: false,
              why: vm
                ? "the write's answer shows other rules for the VM"
                : "the write's answer does not list the VM",
            },
      );
    }
  });
}

// ---- 3. Diagnostic settings --------------------------------------------------------------------

async function diagnosticsFor(ctx: Ctx, d: DiagnosticsSettings, vaults: VaultFacts[]): Promise<void> {
  const { arm } = ctx.deps;
  const regionsWithoutHub = new Set<string>();
  await mapLimit(vaults, ctx.deps.concurrency, async (vault) => {
    const hub = d.eventHubs[vault.location];
    if (!hub) regionsWithoutHub.add(vault.location);
    const listed = await arm.listDiagnosticSettings(vault.id);
    if (!listed.ok) {
      failed(ctx, 'diagnostics', vault.id, 'listing the diagnostic settings failed', listed.failure);
      return;
    }
    const plan = planDiagnostics(listed.value, d.workspaceResourceId, hub);
    const desired = {
      setting: DIAGNOSTIC_SETTING_NAME,
      workspace: d.workspaceResourceId ?? null,
      logAnalyticsDestinationType: 'Dedicated',
      eventHub: hub ? `${hub.authorizationRuleId}|${hub.name}` : null,
    };
    if (plan.compliant) {
      add(ctx, {
        resource: vault.id,
        item: 'diagnostics',
        current: plan.current,
        desired,
        why: 'AuditEvent reaches every configured sink',
        action: 'none',
      });
      return;
    }
    if (plan.blocked && plan.inPlace) {
      add(ctx, {
        resource: vault.id,
        item: 'diagnostics',
        current: plan.current,
        desired,
        why: plan.blocked,
        action: 'blocked',
      });
      return;
    }
    const missing = [
      plan.setting?.workspaceId ? 'the workspace (Dedicated)' : undefined,
      plan.setting?.eventHubName ? `the Event Hub of ${vault.location}` : undefined,
    ].filter(Boolean);
    const entry = add(ctx, {
      resource: vault.id,
      item: 'diagnostics',
      current: plan.current,
      desired,
      why: `AuditEvent does not reach ${missing.join(' and ')}: without it kvguard cannot name the callers of this vault${plan.blocked ? `; also ${plan.blocked}` : ''}`,
      action: plan.blocked ? 'blocked' : 'change',
    });
    const setting = plan.setting;
    if (!ctx.enforce || !setting || plan.inPlace) return;
    const put = await arm.putDiagnosticSetting(vault.id, setting);
    if (!put.ok) {
      settle(entry, { ok: false, why: describe(put.failure) });
      return;
    }
    // The vault's settings as they now stand: the listing with the PUT's answer in place of the
    // setting written (see `settle`), planned again.
    const written = { ...put.value, name: put.value.name || setting.name };
    const after = [...listed.value.filter((s) => !eq(s.name, setting.name)), written];
    const again = planDiagnostics(after, d.workspaceResourceId, hub);
    if (plan.blocked) {
      // kvguard-audit took the sinks kvguard may add; the entry stays blocked on what it may not change.
      if (again.inPlace) entry.applied = true;
      else entry.why += "; the write's answer shows kvguard-audit without the missing sinks";
      return;
    }
    settle(
      entry,
      again.compliant
        ? { ok: true }
        : { ok: false, why: "the write's answer shows AuditEvent still missing a sink" },
    );
  });
  for (const region of [...regionsWithoutHub].sort()) {
    add(ctx, {
      resource: `/subscriptions/${ctx.sub}/locations/${region}`,
      item: 'diagnostics',
      current: { eventHub: null },
      desired: { eventHub: `an Event Hub in ${region}` },
      why: `no Event Hub is configured for ${region} (a diagnostic setting can only stream to a namespace in the vault's region): the vaults there are covered by the workspace alert and the sweep, and their callers are named minutes later`,
      action: 'blocked',
    });
  }
}

// ---- 4. Purge protection -----------------------------------------------------------------------

async function purgeProtectionFor(ctx: Ctx, vaults: VaultFacts[]): Promise<void> {
  const { vaults: vm } = ctx.deps;
  await mapLimit(vaults, ctx.deps.concurrency, async (vault) => {
    if (vault.enablePurgeProtection) {
      add(ctx, {
        resource: vault.id,
        item: 'purgeProtection',
        current: true,
        desired: true,
        why: 'purge protection is on',
        action: 'none',
      });
      return;
    }
    const entry = add(ctx, {
      resource: vault.id,
      item: 'purgeProtection',
      current: false,
      desired: true,
      why: 'purge protection is off: a deleted key or vault can be purged before kvguard recovers it',
      action: 'change',
    });
    if (!ctx.enforce) return;
    const r = await vm.enablePurgeProtection(vault.id);
    if (!r.ok) {
      settle(entry, { ok: false, why: describe(r.failure) });
      return;
    }
    settle(
      entry,
      r.value.enablePurgeProtection
        ? { ok: true }
        : { ok: false, why: "the write's answer shows purge protection off" },
    );
  });
}

// ---- 5. Policy assignment ----------------------------------------------------------------------

async function policyFor(ctx: Ctx, p: PolicySettings, scope: string): Promise<void> {
  const { arm } = ctx.deps;
  const resource = `${scope}/providers/Microsoft.Authorization/policyAssignments/${POLICY_ASSIGNMENT_NAME}`;
  const desired = { policyDefinitionId: DELETION_PROTECTION_POLICY_ID, effect: p.effect };
  const got = await arm.getPolicyAssignment(scope, POLICY_ASSIGNMENT_NAME);
  if (!got.ok) {
    failed(ctx, 'policy', resource, 'reading the policy assignment failed', got.failure);
    return;
  }
  const cur = got.value;
  const matches = (a: typeof cur) =>
    a !== undefined &&
    eq(a.policyDefinitionId, DELETION_PROTECTION_POLICY_ID) &&
    (a.effect ?? 'Audit') === p.effect &&
    (a.enforcementMode ?? 'Default') === 'Default';
  const current = cur
    ? {
        policyDefinitionId: cur.policyDefinitionId,
        effect: cur.effect ?? 'Audit',
        enforcementMode: cur.enforcementMode ?? 'Default',
      }
    : null;
  if (matches(cur)) {
    add(ctx, {
      resource,
      item: 'policy',
      current,
      desired,
      why: `"${DELETION_PROTECTION_POLICY_NAME}" is assigned with effect ${p.effect}`,
      action: 'none',
    });
    return;
  }
  const entry = add(ctx, {
    resource,
    item: 'policy',
    current,
    desired,
    why: cur
      ? `the assignment differs (effect ${cur.effect ?? 'Audit'}, mode ${cur.enforcementMode ?? 'Default'})`
      : `"${DELETION_PROTECTION_POLICY_NAME}" is not assigned at ${scope}`,
    action: 'change',
  });
  if (!ctx.enforce) return;
  const put = await arm.putPolicyAssignment(scope, POLICY_ASSIGNMENT_NAME, {
    policyDefinitionId: DELETION_PROTECTION_POLICY_ID,
    effect: p.effect,
    displayName: `${DELETION_PROTECTION_POLICY_NAME} (kvguard)`,
    description: 'Assigned by kvguard posture reconciliation (design §3).',
  });
  if (!put.ok) {
    settle(entry, { ok: false, why: describe(put.failure) });
    return;
  }
  settle(
    entry,
    matches(put.value)
      ? { ok: true }
      : {
          ok: false,
          why: `the write's answer shows a different assignment (effect ${put.value.effect ?? 'Audit'}, mode ${put.value.enforcementMode ?? 'Default'})`,
        },
  );
}

// ---- 6. Flow logs ------------------------------------------------------------------------------

async function flowLogsFor(ctx: Ctx, f: FlowLogSettings): Promise<void> {
  const { arm } = ctx.deps;
  const vnets = await arm.listVirtualNetworks(ctx.sub);
  if (!vnets.ok) {
    failed(
      ctx,
      'flowLogs',
      `/subscriptions/${ctx.sub}`,
      'listing the virtual networks failed',
      vnets.failure,
    );
    return;
  }
  if (vnets.value.length === 0) return;
  const watchers = await arm.listNetworkWatchers(ctx.sub);
  if (!watchers.ok) {
    failed(
      ctx,
      'flowLogs',
      `/subscriptions/${ctx.sub}`,
      'listing the network watchers failed',
      watchers.failure,
    );
    return;
  }
  const logsOf = new Map<string, Promise<Awaited<ReturnType<PostureArm['listFlowLogs']>>>>();
  const flowLogsOf = (w: NetworkWatcherFacts) => {
    let p = logsOf.get(w.id.toLowerCase());
    if (!p) {
      p = arm.listFlowLogs(ctx.sub, w);
      logsOf.set(w.id.toLowerCase(), p);
    }
    return p;
  };
  await mapLimit(vnets.value, ctx.deps.concurrency, async (vnet) => {
    const storageId = f.storageAccountPerRegion[vnet.location];
    const desired = { storageId: storageId ?? null, enabled: true, retentionDays: f.retentionDays };
    const watcher = watchers.value.find((w) => w.location === vnet.location);
    if (!storageId || !watcher) {
      add(ctx, {
        resource: vnet.id,
        item: 'flowLogs',
        current: null,
        desired,
        why: !storageId
          ? `no flow-log storage account is configured for ${vnet.location} (it must be in the VNet's region)`
          : `no Network Watcher in ${vnet.location}: Azure creates NetworkWatcher_${vnet.location} in NetworkWatcherRG when enabled for the region`,
        action: 'blocked',
      });
      return;
    }
    const logs = await flowLogsOf(watcher);
    if (!logs.ok) {
      failed(ctx, 'flowLogs', vnet.id, 'listing the flow logs failed', logs.failure);
      return;
    }
    const existing = logs.value.find((l) => eq(l.targetResourceId, vnet.id));
    const current = existing
      ? {
          flowLog: existing.name,
          storageId: existing.storageId,
          enabled: existing.enabled,
          retentionDays: existing.retentionDays,
        }
      : null;
    if (existing && flowLogCompliant(existing, storageId, f.retentionDays)) {
      add(ctx, {
        resource: vnet.id,
        item: 'flowLogs',
        current,
        desired,
        why: 'the VNet flow log is as desired',
        action: 'none',
      });
      return;
    }
    const name = existing?.name ?? `kvguard-${vnet.name}`.slice(0, 80);
    const entry = add(ctx, {
      resource: vnet.id,
      item: 'flowLogs',
      current,
      desired,
      why: existing
        ? `the flow log '${existing.name}' differs`
        : 'the VNet has no flow log (NSG flow logs can no longer be created)',
      action: 'change',
    });
    if (!ctx.enforce) return;
    const put = await arm.putFlowLog(ctx.sub, watcher, name, {
      targetResourceId: vnet.id,
      storageId,
      retentionDays: f.retentionDays,
    });
    if (!put.ok) {
      settle(entry, { ok: false, why: describe(put.failure) });
      return;
    }
    settle(
      entry,
      eq(put.value.targetResourceId, vnet.id) && flowLogCompliant(put.value, storageId, f.retentionDays)
        ? { ok: true }
        : { ok: false, why: "the write's answer shows a different flow log" },
    );
  });
}

// ---- 7. Auto-provisioning (reported only) ------------------------------------------------------

async function autoProvisioningFor(ctx: Ctx): Promise<void> {
  const resource = `/subscriptions/${ctx.sub}/providers/Microsoft.Security/autoProvisioningSettings/default`;
  const listed = await ctx.deps.arm.listAutoProvisioning(ctx.sub);
  if (!listed.ok) {
    failed(ctx, 'autoProvisioning', resource, 'reading auto-provisioning failed', listed.failure);
    return;
  }
  const cur = listed.value.find((s) => eq(s.name, 'default'))?.autoProvision ?? 'Off';
  add(ctx, {
    resource,
    item: 'autoProvisioning',
    current: cur,
    desired: 'Off',
    why:
      cur === 'Off'
        ? 'auto-provisioning is off'
        : 'auto-provisioning is on: it installs the retired Log Analytics agent; reported only, turn it off in Defender for Cloud (Environment settings)',
    action: cur === 'Off' ? 'none' : 'blocked',
  });
}

// ---- 8. Defender alerts ------------------------------------------------------------------------

const SEVERITY: Record<string, AlertMessage['severity']> = {
  high: 'critical',
  medium: 'warning',
  low: 'warning',
  informational: 'informational',
};

export function alertKey(alertId: string): string {
  return createHash('sha256').update(alertId.toLowerCase()).digest('hex').slice(0, 40);
}

export function defenderAlertMessage(a: SecurityAlertFacts, now: Date): AlertMessage {
  const incidentId = `defender_${alertKey(a.id)}`;
  const vaults = a.resourceIds.filter((id) => /\/providers\/Microsoft\.KeyVault\/vaults\//i.test(id));
  const vaultName = vaults[0]?.split('/').pop();
  const title = `Defender for Cloud: ${a.displayName}${vaultName ? ` on ${vaultName}` : ''}`;
  return {
    id: `${incidentId}/primary`,
    incidentId,
    kind: 'primary',
    severity: SEVERITY[a.severity.toLowerCase()] ?? 'warning',
    title,
    time: a.startTime ?? now,
    data: {
      source: 'defender-for-cloud',
      alertId: a.id,
      alertType: a.alertType,
      severity: a.severity,
      status: a.status,
      resources: a.resourceIds,
      ...(vaultName ? { what: { vaultName } } : {}),
      ...(a.alertUri ? { alertUri: a.alertUri } : {}),
    },
    text: [
      title,
      ...(a.description ? [a.description] : []),
      `Severity ${a.severity}, status ${a.status}; resources: ${a.resourceIds.join(', ') || a.compromisedEntity || 'not named'}.`,
      ...(a.alertUri ? [`Details: ${a.alertUri}`] : []),
      'To do: investigate in Defender for Cloud; kvguard forwards each alert once.',
    ],
  };
}

async function deliver(
  deps: ReconcilerDeps,
  message: AlertMessage,
): Promise<{ ok: boolean; detail?: string }> {
  const results = await sendToSinks(deps.sinks, message, deps.log);
  const retry = results.filter((d) => !d.result.ok && d.result.retryable);
  return retry.length === 0 ? { ok: true } : { ok: false, detail: retry.map((d) => d.sink).join(', ') };
}

async function defenderAlertsFor(ctx: Ctx): Promise<void> {
  const { arm, ledger, clock } = ctx.deps;
  const resource = `/subscriptions/${ctx.sub}/providers/Microsoft.Security/alerts`;
  const listed = await arm.listSecurityAlerts(ctx.sub);
  if (!listed.ok) {
    failed(ctx, 'defenderAlerts', resource, 'listing the Defender alerts failed', listed.failure);
    return;
  }
  const alerts = listed.value.filter(isKeyVaultAlert);
  await mapLimit(alerts, ctx.deps.concurrency, async (a) => {
    const now = clock.now();
    const id = alertKey(a.id);
    const claim = await ledger.claim(ALERT_PARTITION, id, { alertId: a.id, firstSeen: now.toISOString() });
    if (!claim.claimed && claim.entry.value.sentAt) return;
    const sent = await deliver(ctx.deps, defenderAlertMessage(a, now));
    if (!sent.ok) {
      add(ctx, {
        resource: a.id,
        item: 'defenderAlerts',
        current: 'not forwarded',
        desired: 'forwarded once',
        why: `forwarding failed on ${sent.detail}; the next run tries again`,
        action: 'failed',
      });
      return;
    }
    const update = await ledger.update(claim.entry, { ...claim.entry.value, sentAt: now.toISOString() });
    if (!update.ok) ctx.deps.log.warn({ alert: a.id }, 'the forwarded-alert row moved; a repeat is possible');
    ctx.forwarded.count++;
  });
}

// ---- The drift report --------------------------------------------------------------------------

export function driftReportMessage(report: PostureReport, now: Date): AlertMessage {
  const { counts } = report;
  const drifted = report.entries.filter((e) => e.action !== 'none');
  const title = `kvguard posture (${report.mode}): ${counts.change} to change, ${counts.blocked} blocked, ${counts.failed} failed across ${report.subscriptions.length} subscription(s)`;
  const line = (e: PlanEntry) =>
    `[${e.action}${e.applied ? ', applied' : ''}] ${e.item} ${e.resource}: ${e.why}`;
  return {
    id: `posture_${report.runId}/drift`,
    incidentId: `posture_${report.runId}`,
    kind: 'drift',
    severity: counts.failed > 0 ? 'critical' : 'warning',
    title,
    time: now,
    data: {
      runId: report.runId,
      mode: report.mode,
      counts,
      entries: drifted.slice(0, 100),
      ...(drifted.length > 100 ? { omitted: drifted.length - 100 } : {}),
    },
    text: [
      title,
      ...drifted.slice(0, 45).map(line),
      ...(drifted.length > 45 ? [`… ${drifted.length - 45} more in the log (runId ${report.runId})`] : []),
      report.mode === 'report'
        ? 'To do: review the plan; set "mode": "enforce" in the desired posture to apply it.'
        : 'To do: fix what is blocked or failed by hand; the next run checks again.',
    ],
  };
}

async function sendDriftReport(deps: ReconcilerDeps, report: PostureReport): Promise<void> {
  const sent = await deliver(deps, driftReportMessage(report, deps.clock.now()));
  if (!sent.ok) deps.log.error({ runId: report.runId, sinks: sent.detail }, 'drift report not delivered');
}
