// The catalog and health reads, answered in Consul's JSON shapes (agent/catalog_endpoint.go,
// agent/health_endpoint.go, api/catalog.go, api/health.go), with Consul's per-table X-Consul-Index:
//   nodes                                 the `nodes` table index
//   services                              the `services` table index
//   service, node, node-services          max(nodes, services)
//   health-node, health-checks, -state    the `checks` table index
//   health-service                        max(nodes, services, checks)
// Rows come in key order: nodes by name, a node's services and checks by ID (Consul's memdb order).
//
// Every read scans the catalog table (or one node's rows). Catalogs are small next to the KV store;
// an index by service name is the next step if one is not.

import { goDurationString } from '../base/index.js';
import { checkAsGo, serviceAsGo } from '../snapshot/index.js';
import { catalogName } from './layout.js';
import type { CatalogRow, KvTxn } from './store.js';
import type { CatalogNode, CatalogQuery, CatalogRead, HealthCheck, NodeService } from './types.js';

export async function catalogQuery(txn: KvTxn, q: CatalogQuery): Promise<CatalogRead> {
  const index = async (...tables: Array<'nodes' | 'services' | 'checks'>): Promise<number> => {
    let max = 1;
    for (const t of tables) max = Math.max(max, await txn.tableIndex(t));
    return max;
  };
  switch (q.what) {
    case 'nodes': {
      const rows = await txn.catalogRows('');
      return { index: await index('nodes'), json: nodesOf(rows).map(nodeJson) };
    }
    case 'services': {
      const tags = new Map<string, Set<string>>();
      for (const [, row] of await txn.catalogRows('')) {
        if (row.kind !== 'service') continue;
        const set = tags.get(row.service.Service) ?? new Set<string>();
        for (const t of row.service.Tags) set.add(t);
        tags.set(row.service.Service, set);
      }
      const json: Record<string, string[]> = {};
      for (const name of [...tags.keys()].sort()) json[name] = [...(tags.get(name) as Set<string>)].sort();
      return { index: await index('services'), json };
    }
    case 'service': {
      const out: unknown[] = [];
      for (const { node, services } of grouped(await txn.catalogRows(''))) {
        for (const s of services) if (s.Service === q.name && hasTags(s, q.tags)) out.push(serviceNodeJson(node, s));
      }
      return { index: await index('nodes', 'services'), json: out };
    }
    case 'node': {
      const group = grouped(await txn.catalogRows(catalogName.node(q.node)))[0];
      const json = group === undefined ? null : {
        Node: nodeJson(group.node),
        Services: Object.fromEntries(group.services.map((s) => [s.ID, serviceJson(s)])),
      };
      return { index: await index('nodes', 'services'), json };
    }
    case 'node-services': {
      const group = grouped(await txn.catalogRows(catalogName.node(q.node)))[0];
      const json = group === undefined ? null : { Node: nodeJson(group.node), Services: group.services.map(serviceJson) };
      return { index: await index('nodes', 'services'), json };
    }
    case 'health-node': {
      const group = grouped(await txn.catalogRows(catalogName.node(q.node)))[0];
      return { index: await index('checks'), json: (group?.checks ?? []).map(checkJson) };
    }
    case 'health-checks': {
      const checks = (await txn.catalogRows('')).flatMap(([, row]) => (row.kind === 'check' && row.check.ServiceName === q.service ? [row.check] : []));
      return { index: await index('checks'), json: checks.map(checkJson) };
    }
    case 'health-state': {
      const checks = (await txn.catalogRows('')).flatMap(([, row]) => (row.kind === 'check' && (q.state === 'any' || row.check.Status === q.state) ? [row.check] : []));
      return { index: await index('checks'), json: checks.map(checkJson) };
    }
    case 'health-service': {
      const out: unknown[] = [];
      for (const { node, services, checks } of grouped(await txn.catalogRows(''))) {
        for (const s of services) {
          if (s.Service !== q.service || !hasTags(s, q.tags)) continue;
          const own = checks.filter((c) => c.ServiceID === '' || c.ServiceID === s.ID);
          if (q.passing && own.some((c) => c.Status !== 'passing')) continue;
          out.push({ Node: nodeJson(node), Service: serviceJson(s), Checks: own.map(checkJson) });
        }
      }
      return { index: await index('nodes', 'services', 'checks'), json: out };
    }
  }
}

interface NodeGroup {
  readonly node: CatalogNode;
  readonly services: NodeService[];
  readonly checks: HealthCheck[];
}

/** Rows in key order, grouped by node (a node's row comes before its services and checks). */
function grouped(rows: ReadonlyArray<[string, CatalogRow]>): NodeGroup[] {
  const out: NodeGroup[] = [];
  let current: NodeGroup | undefined;
  for (const [, row] of rows) {
    if (row.kind === 'node') {
      current = { node: row.node, services: [], checks: [] };
      out.push(current);
    } else if (current !== undefined && current.node.Node === row.node) {
      if (row.kind === 'service') current.services.push(row.service);
      else current.checks.push(row.check);
    }
  }
  return out;
}

function nodesOf(rows: ReadonlyArray<[string, CatalogRow]>): CatalogNode[] {
  return rows.flatMap(([, row]) => (row.kind === 'node' ? [row.node] : []));
}

function hasTags(s: NodeService, tags: readonly string[]): boolean {
  return tags.every((t) => s.Tags.includes(t));
}

const nullIfEmpty = <T extends object>(m: T): T | null => (Object.keys(m).length === 0 ? null : m);

/** api.Node: /v1/catalog/nodes, and `Node` of /v1/catalog/node and /v1/health/service. */
export function nodeJson(n: CatalogNode): Record<string, unknown> {
  return {
    ID: n.ID,
    Node: n.Node,
    Address: n.Address,
    Datacenter: n.Datacenter,
    TaggedAddresses: nullIfEmpty(n.TaggedAddresses),
    Meta: nullIfEmpty(n.Meta),
    CreateIndex: n.CreateIndex,
    ModifyIndex: n.ModifyIndex,
  };
}

/** api.AgentService as the catalog shows it: Kind and TaggedAddresses only when set (Go's omitempty). */
export function serviceJson(s: NodeService): Record<string, unknown> {
  const { Kind, TaggedAddresses, ...rest } = serviceAsGo(s);
  // Tags: [] rather than Go's nil, as Consul's catalog and health handlers answer.
  return { ...(s.Kind === '' ? {} : { Kind }), ...rest, Tags: [...s.Tags], ...(Object.keys(s.TaggedAddresses).length === 0 ? {} : { TaggedAddresses }) };
}

/** api.CatalogService: the node's fields, then the service's, with the service's indexes. */
function serviceNodeJson(n: CatalogNode, s: NodeService): Record<string, unknown> {
  return {
    ID: n.ID,
    Node: n.Node,
    Address: n.Address,
    Datacenter: n.Datacenter,
    TaggedAddresses: nullIfEmpty(n.TaggedAddresses),
    NodeMeta: nullIfEmpty(n.Meta),
    ServiceKind: s.Kind,
    ServiceID: s.ID,
    ServiceName: s.Service,
    // Consul's handlers turn nil tag lists into [] (clients iterate them).
    ServiceTags: [...s.Tags],
    ServiceAddress: s.Address,
    ...(Object.keys(s.TaggedAddresses).length === 0 ? {} : { ServiceTaggedAddresses: s.TaggedAddresses }),
    ServiceWeights: { Passing: s.Weights.Passing, Warning: s.Weights.Warning },
    ServiceMeta: nullIfEmpty(s.Meta),
    ServicePort: s.Port,
    ServiceEnableTagOverride: s.EnableTagOverride,
    CreateIndex: s.CreateIndex,
    ModifyIndex: s.ModifyIndex,
  };
}

/** api.HealthCheck; Definition shows only what is set, durations as Go duration strings (Consul's MarshalJSON). */
export function checkJson(c: HealthCheck): Record<string, unknown> {
  const d = c.Definition;
  const definition: Record<string, unknown> = {};
  if (d.HTTP !== '') definition['HTTP'] = d.HTTP;
  if (d.Method !== '') definition['Method'] = d.Method;
  if (d.TLSSkipVerify) definition['TLSSkipVerify'] = true;
  if (d.TCP !== '') definition['TCP'] = d.TCP;
  if (d.Interval !== 0) definition['Interval'] = goDurationString(Math.round(d.Interval / 1e6));
  if (d.Timeout !== 0) definition['Timeout'] = goDurationString(Math.round(d.Timeout / 1e6));
  if (d.DeregisterCriticalServiceAfter !== 0) definition['DeregisterCriticalServiceAfter'] = goDurationString(Math.round(d.DeregisterCriticalServiceAfter / 1e6));
  // The record's shape (checkAsGo), with the JSON's own forms of the tags and the definition.
  return { ...checkAsGo(c), ServiceTags: [...c.ServiceTags], Definition: definition };
}
