/**
 * Golden inputs: every sample Microsoft published (docs samples and the Event Grid spec examples)
 * must parse, quirks included, and give the outcome asserted here field by field.
 */
import { SPECS_DIR } from '../emulator/testing/specs';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { readKeyVaultEventData } from '../../lib/core/events';
import type {
  QueryNeededTrigger,
  Rejection,
  VaultDeletedTrigger,
  VaultWrittenTrigger,
} from '../../lib/core/model';
import { normalise } from '../../lib/core/normalise';
import { clone, FIXTURES, loadJson } from './core-fixtures';

const GOLDEN = join(FIXTURES, 'azure-specs');
const SHARED = SPECS_DIR;

function jsonFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return jsonFiles(p);
    return name.endsWith('.json') ? [p] : [];
  });
}

const golden = (rel: string): unknown => loadJson(join('azure-specs', rel));

describe('golden inputs', () => {
  const files = jsonFiles(GOLDEN)
    .map((p) => relative(GOLDEN, p))
    .sort();

  it('covers every docs sample and every Event Grid spec example', () => {
    expect(files).toEqual([
      'docs-samples/azure-monitor/common-alert-schema.log-alerts-v2.alertContext-sample.json',
      'docs-samples/azure-monitor/common-alert-schema.log-alerts-v2.test-action-payload.json',
      'docs-samples/event-grid/keyvault-SecretNewVersionCreated.cloudevents-schema.json',
      'docs-samples/event-grid/keyvault-SecretNewVersionCreated.eventgrid-schema.json',
      'docs-samples/event-grid/resources-ResourceActionSuccess.json',
      'docs-samples/event-grid/resources-ResourceDeleteSuccess.json',
      'docs-samples/event-grid/resources-ResourceWriteSuccess.json',
      'docs-samples/key-vault/auditevent-record.json',
      'eventgrid/Microsoft.KeyVault/stable/2018-01-01/examples/event-grid-schema/secret_new_version_created.json',
      'eventgrid/Microsoft.Resources/stable/2018-01-01/examples/event-grid-schema/resource_delete_success.json',
      'eventgrid/Microsoft.Resources/stable/2018-01-01/examples/event-grid-schema/resource_write_success.json',
    ]);
  });

  (existsSync(SHARED) ? it : it.skip)('holds the same content as the shared reference folder', () => {
    const shared = [
      ...jsonFiles(join(SHARED, 'docs-samples')),
      ...jsonFiles(join(SHARED, 'eventgrid')).filter((p) => p.includes('/examples/')),
    ]
      .map((p) => relative(SHARED, p))
      .sort();
    expect(shared).toEqual(files);
    for (const f of files) {
      expect([f, golden(f)]).toEqual([f, JSON.parse(readFileSync(join(SHARED, f), 'utf8'))]);
    }
  });

  it.each(files)('%s normalises on the replay path without throwing, one result per item', (f) => {
    const results = normalise(golden(f), 'replay');
    expect(results.length).toBeGreaterThanOrEqual(1);
    for (const r of results) expect(r.source).toBe('replay');
  });
});

describe('Key Vault system events (SecretNewVersionCreated samples)', () => {
  const docsCloudEvents = 'docs-samples/event-grid/keyvault-SecretNewVersionCreated.cloudevents-schema.json';
  const docsEventGrid = 'docs-samples/event-grid/keyvault-SecretNewVersionCreated.eventgrid-schema.json';
  const specEventGrid =
    'eventgrid/Microsoft.KeyVault/stable/2018-01-01/examples/event-grid-schema/secret_new_version_created.json';

  it.each([
    [docsCloudEvents, 'eventGrid', 'cloudEvent', '[0]'],
    [docsEventGrid, 'eventGrid', 'eventGrid', '[0]'],
    [specEventGrid, 'eventGrid', 'eventGrid', ''],
  ] as const)('%s is acknowledged as an unsupported type', (f, via, source, path) => {
    expect(normalise(golden(f), via)).toEqual([
      {
        kind: 'rejection',
        reason: 'unsupported-type',
        message: 'event type Microsoft.KeyVault.SecretNewVersionCreated is not a signal kvguard handles',
        source,
        path,
        eventId: '00eccf70-95a7-4e7c-8299-2eb17ee9ad64',
        eventType: 'Microsoft.KeyVault.SecretNewVersionCreated',
      },
    ]);
  });

  it.each([docsCloudEvents, docsEventGrid, specEventGrid])(
    'reads the PascalCase data of %s with its quirks',
    (f) => {
      const doc = golden(f) as Record<string, unknown> | Array<Record<string, unknown>>;
      const event = Array.isArray(doc) ? doc[0]! : doc;
      expect(readKeyVaultEventData(event.data)).toEqual({
        id: 'https://sample-kv.vault.azure.net/secrets/newsecret/ee059b2bb5bc48398a53b168c6cdcb10',
        vaultName: 'sample-kv',
        objectType: 'Secret',
        // the docs sample's key is "ObjectName " (trailing space) and its Version has a leading space
        objectName: 'newsecret',
        version: 'ee059b2bb5bc48398a53b168c6cdcb10',
        // NBF/EXP are strings on the wire although KeyVault.json declares numbers
        nbf: 1559081980,
        exp: 1559082102,
      });
    },
  );

  it.each([
    [docsCloudEvents, 'cloudEvent'],
    [docsEventGrid, 'eventGrid'],
  ] as const)(
    'the same envelope typed VaultAccessPolicyChanged becomes an access-policy trigger (%s)',
    (f, source) => {
      const events = clone(golden(f)) as Array<Record<string, unknown>>;
      const e = events[0]!;
      if ('type' in e) e.type = 'Microsoft.KeyVault.VaultAccessPolicyChanged';
      else e.eventType = 'Microsoft.KeyVault.VaultAccessPolicyChanged';
      expect(normalise(events, 'eventGrid')).toEqual([
        {
          kind: 'accessPolicyChanged',
          source,
          vaultName: 'sample-kv',
          vaultHost: 'sample-kv.vault.azure.net',
          vaultResourceId:
            '/subscriptions/{subscription-id}/resourceGroups/sample-rg/providers/Microsoft.KeyVault/vaults/sample-kv',
          signalTime: '2019-07-25T01:08:33.103Z',
          eventId: '00eccf70-95a7-4e7c-8299-2eb17ee9ad64',
          operationName: 'Microsoft.KeyVault.VaultAccessPolicyChanged',
          eventType: 'Microsoft.KeyVault.VaultAccessPolicyChanged',
        },
      ]);
    },
  );
});

describe('Microsoft.Resources samples', () => {
  const deleteDocs = 'docs-samples/event-grid/resources-ResourceDeleteSuccess.json';
  const deleteSpec =
    'eventgrid/Microsoft.Resources/stable/2018-01-01/examples/event-grid-schema/resource_delete_success.json';
  const writeDocs = 'docs-samples/event-grid/resources-ResourceWriteSuccess.json';
  const writeSpec =
    'eventgrid/Microsoft.Resources/stable/2018-01-01/examples/event-grid-schema/resource_write_success.json';
  const actionDocs = 'docs-samples/event-grid/resources-ResourceActionSuccess.json';

  it.each([
    [
      deleteDocs,
      '[0]',
      'Microsoft.Resources.ResourceDeleteSuccess',
      '19a69642-1aad-4a96-a5ab-8d05494513ce',
      'Microsoft.Storage/storageAccounts/delete',
      'deletion',
    ],
    [
      deleteSpec,
      '',
      'Microsoft.Resources.ResourceDeleteSuccess',
      '19a69642-1aad-4a96-a5ab-8d05494513ce',
      'Microsoft.Storage/storageAccounts/delete',
      'deletion',
    ],
    [
      writeDocs,
      '[0]',
      'Microsoft.Resources.ResourceWriteSuccess',
      '4db48cba-50a2-455a-93b4-de41a3b5b7f6',
      'Microsoft.Storage/storageAccounts/write',
      'write',
    ],
    [
      writeSpec,
      '',
      'Microsoft.Resources.ResourceWriteSuccess',
      '4db48cba-50a2-455a-93b4-de41a3b5b7f6',
      'Microsoft.Storage/storageAccounts/write',
      'write',
    ],
  ])(
    '%s (a storage account) is rejected as an unsupported resource',
    (f, path, eventType, eventId, op, verb) => {
      expect(normalise(golden(f), 'eventGrid')).toEqual([
        {
          kind: 'rejection',
          reason: 'unsupported-resource',
          message: `operation ${op} is not a Key Vault vault ${verb}`,
          source: 'eventGrid',
          path,
          eventId,
          eventType,
          operationName: op,
        },
      ]);
    },
  );

  it('ResourceActionSuccess (listKeys) is acknowledged as an unsupported type', () => {
    const [r] = normalise(golden(actionDocs), 'eventGrid') as Rejection[];
    expect(r).toMatchObject({
      kind: 'rejection',
      reason: 'unsupported-type',
      eventType: 'Microsoft.Resources.ResourceActionSuccess',
      path: '[0]',
    });
  });

  /** The sample retargeted at a vault: same claims, httpRequest and envelope. */
  function retarget(f: string, op: 'delete' | 'write'): unknown {
    const doc = clone(golden(f)) as Record<string, unknown> | Array<Record<string, unknown>>;
    const e = Array.isArray(doc) ? doc[0]! : doc;
    const id =
      '/subscriptions/{subscription-id}/resourceGroups/{resource-group}/providers/Microsoft.KeyVault/vaults/contoso-payments';
    e.subject = id;
    const data = e.data as Record<string, unknown>;
    data.resourceUri = id;
    data.resourceProvider = 'Microsoft.KeyVault';
    data.operationName = `Microsoft.KeyVault/vaults/${op}`;
    return doc;
  }

  it.each([deleteDocs, deleteSpec])(
    '%s retargeted at a vault gives a vault deletion with the caller from claims and httpRequest',
    (f) => {
      const [t] = normalise(retarget(f, 'delete'), 'eventGrid') as VaultDeletedTrigger[];
      expect(t).toEqual({
        kind: 'vaultDeleted',
        source: 'eventGrid',
        vaultName: 'contoso-payments',
        vaultHost: 'contoso-payments.vault.azure.net',
        vaultResourceId:
          '/subscriptions/{subscription-id}/resourceGroups/{resource-group}/providers/Microsoft.KeyVault/vaults/contoso-payments',
        signalTime: '2018-07-19T19:24:12.763Z',
        caller: {
          oid: '{ID}',
          upn: '{user-name}',
          appId: '{ID}',
          ipAddress: '{IP-address}',
          displayName: '{full-name}',
        },
        eventId: '19a69642-1aad-4a96-a5ab-8d05494513ce',
        operationName: 'Microsoft.KeyVault/vaults/delete',
        eventType: 'Microsoft.Resources.ResourceDeleteSuccess',
      });
    },
  );

  it('prefers httpRequest.clientIpAddress over the ipaddr claim', () => {
    const doc = retarget(deleteDocs, 'delete') as Array<{
      data: { httpRequest: { clientIpAddress: string }; claims: Record<string, string> };
    }>;
    doc[0]!.data.httpRequest.clientIpAddress = '198.51.100.7';
    doc[0]!.data.claims.ipaddr = '192.0.2.1';
    const [t] = normalise(doc, 'eventGrid') as VaultDeletedTrigger[];
    expect(t!.caller!.ipAddress).toBe('198.51.100.7');
  });

  it.each([writeDocs, writeSpec])(
    '%s retargeted at a vault gives a vault write (no httpRequest: IP from the ipaddr claim)',
    (f) => {
      const [t] = normalise(retarget(f, 'write'), 'eventGrid') as VaultWrittenTrigger[];
      expect(t).toEqual({
        kind: 'vaultWritten',
        source: 'eventGrid',
        vaultName: 'contoso-payments',
        vaultHost: 'contoso-payments.vault.azure.net',
        vaultResourceId:
          '/subscriptions/{subscription-id}/resourceGroups/{resource-group}/providers/Microsoft.KeyVault/vaults/contoso-payments',
        signalTime: '2018-07-19T18:38:04.611Z',
        caller: {
          oid: '{ID}',
          upn: '{user-name}',
          appId: '{ID}',
          ipAddress: '{IP-address}',
          displayName: '{full-name}',
        },
        eventId: '4db48cba-50a2-455a-93b4-de41a3b5b7f6',
        operationName: 'Microsoft.KeyVault/vaults/write',
        eventType: 'Microsoft.Resources.ResourceWriteSuccess',
      });
    },
  );
});

describe('AuditEvent docs sample (VaultGet)', () => {
  it('is a records batch whose only record is not a deletion', () => {
    expect(normalise(golden('docs-samples/key-vault/auditevent-record.json'), 'auditLog')).toEqual([
      {
        kind: 'rejection',
        reason: 'not-a-deletion',
        message: 'VaultGet is not a key deletion or purge',
        source: 'auditLog',
        path: 'records[0]',
        operationName: 'VaultGet',
      },
    ]);
  });
});

describe('common alert schema samples (Log Alerts V2)', () => {
  const payloadFile = 'docs-samples/azure-monitor/common-alert-schema.log-alerts-v2.test-action-payload.json';
  const contextFile = 'docs-samples/azure-monitor/common-alert-schema.log-alerts-v2.alertContext-sample.json';
  const workspace =
    '/subscriptions/aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e/resourcegroups/test-RG/providers/microsoft.operationalinsights/workspaces/test-logAnalyticsWorkspace';

  it('the test-action payload (Computer dimension only) asks for kvguard’s own query over the window', () => {
    const results = normalise(golden(payloadFile), 'monitorAlert');
    expect(results).toEqual<QueryNeededTrigger[]>([
      {
        kind: 'queryNeeded',
        source: 'monitorAlert',
        eventId:
          '/subscriptions/aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e/providers/Microsoft.AlertsManagement/alerts/eeeeeeee-4444-5555-6666-ffffffffffff',
        operationName: 'Log Alerts V2',
        alert: {
          alertId:
            '/subscriptions/aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e/providers/Microsoft.AlertsManagement/alerts/eeeeeeee-4444-5555-6666-ffffffffffff',
          alertRule: 'test-logAlertRule-v2',
          targetResourceIds: [workspace],
          workspaceResourceId: workspace,
        },
        windowStart: '2025-04-15T18:08:03.626Z',
        windowEnd: '2025-04-15T18:08:03.626Z',
        windowSize: 'PT1H',
        firedTime: '2025-04-15T18:08:03.626Z',
        reason: 'the dimensions do not name the key id and TimeGenerated',
      },
    ]);
  });

  it('keeps no URL from the payload (no linkToSearchResultsAPI, no portal link)', () => {
    const text = JSON.stringify(normalise(golden(payloadFile), 'monitorAlert'));
    expect(text).not.toMatch(/https?:/);
    expect(text).not.toContain('loganalytics');
    expect(text).not.toContain('portal.azure.com');
  });

  it('the alertContext-only sample is not a whole payload and is rejected as malformed', () => {
    expect(normalise(golden(contextFile), 'monitorAlert')).toEqual([
      {
        kind: 'rejection',
        reason: 'malformed',
        message: 'not an accepted input shape (object)',
        source: 'monitorAlert',
        path: '',
      },
    ]);
  });

  it('the alertContext sample inside the test payload’s envelope gives its window (and its broken %2a escape is harmless)', () => {
    const payload = clone(golden(payloadFile)) as { data: { alertContext: unknown } };
    payload.data.alertContext = (golden(contextFile) as { alertContext: unknown }).alertContext;
    const [t] = normalise(payload, 'monitorAlert') as QueryNeededTrigger[];
    expect(t).toMatchObject({
      kind: 'queryNeeded',
      windowStart: '2020-07-07T13:54:34.000Z',
      windowEnd: '2020-07-09T13:54:34.000Z',
      windowSize: 'PT10M',
    });
    expect(JSON.stringify(t)).not.toMatch(/https?:/);
  });
});
