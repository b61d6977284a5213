// The catalog's write logic: Consul's state store functions (agent/consul/state/catalog.go) over a KvTxn.
//
// ensureRegistrationTxn: the node (unless SkipNodeUpdate and it exists), then the service, then each
// check; deleteNodeTxn, deleteServiceTxn, deleteCheckTxn. A row whose content is unchanged keeps its
// indexes (and wakes nobody); a changed one gets ModifyIndex = the entry's index and keeps CreateIndex.
// Each table touched gets the entry's index: `nodes`, `services`, `checks`.
//
// Sessions tied to the catalog are invalidated in the same apply, as Consul does: a check that becomes
// critical or goes away kills the sessions that name it; a node that goes away kills its sessions.

import { catalogName } from './layout.js';
import { sessionDestroy } from './kv-logic.js';
import type { NewCheck, NewNode, NewService } from './command.js';
import type { CatalogRow, KvTxn } from './store.js';
import type { CatalogNode, HealthCheck, LogIndex, NodeService, Session } from './types.js';

/** Applies a register; returns Consul's error text (and the caller drops the txn) or undefined. */
export async function catalogRegister(
  txn: KvTxn,
  idx: LogIndex,
  request: { readonly node: NewNode; readonly skipNodeUpdate: boolean; readonly service?: NewService; readonly checks: readonly NewCheck[] },
): Promise<string | undefined> {
  const nodeName = request.node.Node;
  const existing = await getNode(txn, nodeName);
  if (!request.skipNodeUpdate || existing === undefined) ensureNode(txn, idx, request.node, existing);
  if (request.service !== undefined) {
    const problem = await ensureService(txn, idx, nodeName, request.service);
    if (problem !== undefined) return problem;
  }
  for (const check of request.checks) {
    const problem = await ensureCheck(txn, idx, nodeName, check);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

/** Applies a deregister: the node with everything on it, or a service (with its checks) and/or a check. */
export async function catalogDeregister(txn: KvTxn, idx: LogIndex, node: string, serviceId: string, checkId: string): Promise<void> {
  if (serviceId === '' && checkId === '') {
    await deleteNode(txn, idx, node);
    return;
  }
  if (serviceId !== '') await deleteService(txn, idx, node, serviceId);
  if (checkId !== '') await deleteCheck(txn, idx, node, checkId);
}

/**
 * Consul's sessionCreateTxn checks: the node is registered, and every check the session names exists
 * on it and is not critical. Returns Consul's error text, or undefined.
 */
export async function sessionCatalogProblem(txn: KvTxn, session: Pick<Session, 'Node' | 'NodeChecks' | 'ServiceChecks'>): Promise<string | undefined> {
  if ((await getNode(txn, session.Node)) === undefined) return 'Missing node registration';
  for (const id of [...session.NodeChecks, ...session.ServiceChecks.map((c) => c.ID)]) {
    const check = await getCheck(txn, session.Node, id);
    if (check === undefined) return `Missing check '${id}' registration`;
    if (check.Status === 'critical') return `Check '${id}' is in ${check.Status} state`;
  }
  return undefined;
}

async function one(txn: KvTxn, name: string): Promise<CatalogRow | undefined> {
  const rows = await txn.catalogRows(name);
  const hit = rows.find(([n]) => n === name);
  return hit?.[1];
}

export async function getNode(txn: KvTxn, node: string): Promise<CatalogNode | undefined> {
  const row = await one(txn, catalogName.node(node));
  return row?.kind === 'node' ? row.node : undefined;
}

async function getService(txn: KvTxn, node: string, id: string): Promise<NodeService | undefined> {
  const row = await one(txn, catalogName.service(node, id));
  return row?.kind === 'service' ? row.service : undefined;
}

async function getCheck(txn: KvTxn, node: string, id: string): Promise<HealthCheck | undefined> {
  const row = await one(txn, catalogName.check(node, id));
  return row?.kind === 'check' ? row.check : undefined;
}

function ensureNode(txn: KvTxn, idx: LogIndex, node: NewNode, existing: CatalogNode | undefined): void {
  if (existing !== undefined && sameJson(withoutIndexes(existing), node)) return;
  const row: CatalogNode = { ...node, CreateIndex: existing?.CreateIndex ?? idx, ModifyIndex: idx };
  txn.putCatalogRow(catalogName.node(node.Node), { kind: 'node', node: row });
  txn.setTableIndex('nodes', idx);
}

async function ensureService(txn: KvTxn, idx: LogIndex, node: string, service: NewService): Promise<string | undefined> {
  if ((await getNode(txn, node)) === undefined) return 'Missing node registration';
  const existing = await getService(txn, node, service.ID);
  if (existing !== undefined && sameJson(withoutIndexes(existing), service)) return undefined;
  const row: NodeService = { ...service, CreateIndex: existing?.CreateIndex ?? idx, ModifyIndex: idx };
  txn.putCatalogRow(catalogName.service(node, service.ID), { kind: 'service', node, service: row });
  txn.setTableIndex('services', idx);
  return undefined;
}

async function ensureCheck(txn: KvTxn, idx: LogIndex, node: string, check: NewCheck): Promise<string | undefined> {
  if ((await getNode(txn, node)) === undefined) return 'Missing node registration';
  let serviceName = '';
  let serviceTags: readonly string[] = [];
  if (check.ServiceID !== '') {
    const service = await getService(txn, node, check.ServiceID);
    if (service === undefined) return `Missing service registration`;
    serviceName = service.Service;
    serviceTags = service.Tags;
  }
  const full: Omit<HealthCheck, 'CreateIndex' | 'ModifyIndex'> = { ...check, Node: node, ServiceName: serviceName, ServiceTags: serviceTags };
  const existing = await getCheck(txn, node, check.CheckID);
  if (existing !== undefined && sameJson(withoutIndexes(existing), full)) return undefined;
  const row: HealthCheck = { ...full, CreateIndex: existing?.CreateIndex ?? idx, ModifyIndex: idx };
  txn.putCatalogRow(catalogName.check(node, check.CheckID), { kind: 'check', node, check: row });
  txn.setTableIndex('checks', idx);
  if (row.Status === 'critical') await invalidateCheckSessions(txn, idx, node, row.CheckID);
  return undefined;
}

async function deleteNode(txn: KvTxn, idx: LogIndex, node: string): Promise<void> {
  const rows = await txn.catalogRows(catalogName.node(node));
  if (rows.length === 0) return;
  let services = false;
  let checks = false;
  for (const [name, row] of rows) {
    txn.removeCatalogRow(name);
    if (row.kind === 'service') services = true;
    if (row.kind === 'check') checks = true;
  }
  txn.setTableIndex('nodes', idx);
  if (services) txn.setTableIndex('services', idx);
  if (checks) txn.setTableIndex('checks', idx);
  for (const s of await txn.listSessions()) if (s.Node === node) await sessionDestroy(txn, idx, s.ID);
}

async function deleteService(txn: KvTxn, idx: LogIndex, node: string, id: string): Promise<void> {
  if ((await getService(txn, node, id)) === undefined) return;
  txn.removeCatalogRow(catalogName.service(node, id));
  txn.setTableIndex('services', idx);
  for (const [, row] of await txn.catalogRows(catalogName.node(node))) {
    if (row.kind === 'check' && row.check.ServiceID === id) await deleteCheck(txn, idx, node, row.check.CheckID);
  }
}

async function deleteCheck(txn: KvTxn, idx: LogIndex, node: string, id: string): Promise<void> {
  if ((await getCheck(txn, node, id)) === undefined) return;
  txn.removeCatalogRow(catalogName.check(node, id));
  txn.setTableIndex('checks', idx);
  await invalidateCheckSessions(txn, idx, node, id);
}

/** Destroys every session of `node` that names check `id` (node or service check). */
async function invalidateCheckSessions(txn: KvTxn, idx: LogIndex, node: string, id: string): Promise<void> {
  for (const s of await txn.listSessions()) {
    if (s.Node !== node) continue;
    if (s.NodeChecks.includes(id) || s.ServiceChecks.some((c) => c.ID === id)) await sessionDestroy(txn, idx, s.ID);
  }
}

function withoutIndexes<T extends { CreateIndex: number; ModifyIndex: number }>(row: T): Omit<T, 'CreateIndex' | 'ModifyIndex'> {
  const { CreateIndex: _c, ModifyIndex: _m, ...rest } = row;
  return rest;
}

/** Equal content, whatever the order of the fields. */
function sameJson(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}
