// The catalog in state.bin: Consul's Register (0) records, and the bodies the FSM stores for catalog rows.
//
// Consul's snapshot writes, per node (agent/consul/fsm/snapshot_ce.go, persistNodes): one RegisterRequest
// holding the node alone, then one per service (the node's fields plus `Service`), then one per check
// (the node's fields plus `Check`). The node's RaftIndex is flattened into the request; each service and
// check carries its own. We write the same: the FSM stores
//   - the node row as the node-only RegisterRequest body (nodeBodyHead: a fixmap of 8 fields),
//   - a service row as the structs.NodeService body,
//   - a check row as the structs.HealthCheck body,
// and the snapshot stream composes a service or check record from the node's body and the row's
// (`registerRecordWith`), so stored bytes go into the stream without a decode.
//
// Reading (a restore, or our own rows): every field is validated; unknown fields (Connect, Proxy,
// Enterprise meta, ...) are ignored, as Consul's decoder ignores what it does not know. Indexes missing
// or 0 (snapshots from Consul 0.x carry none) are the header's LastIndex, as Consul's restore does.

import { Encoder } from '@msgpack/msgpack';
import { isWellFormedText } from '../base/index.js';
import { bad, has, text, texts, uint, type Parsed } from './records.js';
import { describeValue, isPlainMap } from './values.js';
import type { CatalogNode, CheckDefinition, CheckStatus, HealthCheck, NodeService, ServiceAddress, ServiceWeights } from './types.js';

const encoder = new Encoder({ ignoreUndefined: false, sortKeys: false });

/** The first byte of every node row body we write: a msgpack fixmap of 8 entries. */
export const nodeBodyHead = 0x88;
/** The first byte of every service row body we write: a fixmap of 12 entries. */
export const serviceBodyHead = 0x8c;
/** The first byte of every check row body we write: a fixmap of 13 entries. */
export const checkBodyHead = 0x8d;

/** Longest node name, service ID or check ID we accept (bytes of UTF-8); Consul has no limit, DNS labels 63. */
export const catalogNameMaxBytes = 256;

const nullIfEmpty = <T extends object>(m: T): T | null => (Object.keys(m).length === 0 ? null : m);

/** The node as the node-only RegisterRequest body (and the JSON of /v1/catalog/nodes, but `NodeMeta` there is `Meta`). */
export function encodeNodeBody(n: CatalogNode): Uint8Array {
  return encoder.encode({
    ID: n.ID,
    Node: n.Node,
    Address: n.Address,
    Datacenter: n.Datacenter,
    TaggedAddresses: nullIfEmpty(n.TaggedAddresses),
    NodeMeta: nullIfEmpty(n.Meta),
    CreateIndex: n.CreateIndex,
    ModifyIndex: n.ModifyIndex,
  });
}

/** structs.NodeService in Go's field order (the CE fields we model), empty lists and maps as nil. */
export function serviceAsGo(s: NodeService): Record<string, unknown> {
  return {
    Kind: s.Kind,
    ID: s.ID,
    Service: s.Service,
    Tags: s.Tags.length === 0 ? null : s.Tags,
    Address: s.Address,
    TaggedAddresses: nullIfEmpty(s.TaggedAddresses),
    Meta: nullIfEmpty(s.Meta),
    Port: s.Port,
    Weights: { Passing: s.Weights.Passing, Warning: s.Weights.Warning },
    EnableTagOverride: s.EnableTagOverride,
    CreateIndex: s.CreateIndex,
    ModifyIndex: s.ModifyIndex,
  };
}

export function encodeServiceBody(s: NodeService): Uint8Array {
  return encoder.encode(serviceAsGo(s));
}

function definitionAsGo(d: CheckDefinition): Record<string, unknown> {
  return {
    HTTP: d.HTTP,
    Method: d.Method,
    TLSSkipVerify: d.TLSSkipVerify,
    TCP: d.TCP,
    Interval: d.Interval,
    Timeout: d.Timeout,
    DeregisterCriticalServiceAfter: d.DeregisterCriticalServiceAfter,
  };
}

/** structs.HealthCheck in Go's field order, Definition's durations as nanoseconds (msgpack's form). */
export function checkAsGo(c: HealthCheck): Record<string, unknown> {
  return {
    Node: c.Node,
    CheckID: c.CheckID,
    Name: c.Name,
    Status: c.Status,
    Notes: c.Notes,
    Output: c.Output,
    ServiceID: c.ServiceID,
    ServiceName: c.ServiceName,
    ServiceTags: c.ServiceTags.length === 0 ? null : c.ServiceTags,
    Type: c.Type,
    Definition: definitionAsGo(c.Definition),
    CreateIndex: c.CreateIndex,
    ModifyIndex: c.ModifyIndex,
  };
}

export function encodeCheckBody(c: HealthCheck): Uint8Array {
  return encoder.encode(checkAsGo(c));
}

const serviceKey = encoder.encode('Service');
const checkKey = encoder.encode('Check');

/**
 * The Register record of a service or check row: the node's body (which we wrote: a fixmap of 8) with
 * one more field, `Service` or `Check`, whose value is the row's body. Same bytes as encoding the
 * composed map.
 */
export function registerRecordWith(nodeBody: Uint8Array, field: 'Service' | 'Check', rowBody: Uint8Array): Uint8Array {
  const name = field === 'Service' ? serviceKey : checkKey;
  const out = new Uint8Array(nodeBody.length + name.length + rowBody.length);
  out[0] = nodeBodyHead + 1;
  out.set(nodeBody.subarray(1), 1);
  out.set(name, nodeBody.length);
  out.set(rowBody, nodeBody.length + name.length);
  return out;
}

/** What one Register record holds: the node, and the service and checks it registers with it. */
export interface RegisterRecord {
  readonly node: CatalogNode;
  readonly service: NodeService | undefined;
  readonly checks: readonly HealthCheck[];
}

/** A catalog name (node, service ID, check ID): not empty, UTF-8, no NUL, at most catalogNameMaxBytes. */
export function catalogNameProblem(name: string): string | undefined {
  if (name === '') return 'is empty';
  if (name.includes('\u0000')) return 'contains a NUL character';
  if (!isWellFormedText(name)) return 'holds a lone UTF-16 surrogate';
  if (Buffer.byteLength(name, 'utf8') > catalogNameMaxBytes) return `is longer than ${catalogNameMaxBytes} bytes`;
  return undefined;
}

/**
 * Parses a Register record body (decoded with rawStrings). `lastIndex` stands in for missing or zero
 * indexes. The node's Datacenter is kept as written.
 */
export function parseRegisterRecord(body: unknown, lastIndex: number): Parsed<RegisterRecord> {
  if (!isPlainMap(body)) return bad(undefined, false, `body must be a map, got ${describeValue(body)}`);
  const node = parseNodeFields(body, 'NodeMeta', lastIndex);
  if (!node.ok) return node;
  let service: NodeService | undefined;
  if (has(body, 'Service') && body['Service'] !== null) {
    const s = parseService(body['Service'], lastIndex);
    if (!s.ok) return prefixed('Service', s);
    service = s.value;
  }
  const checks: HealthCheck[] = [];
  if (has(body, 'Check') && body['Check'] !== null) {
    const c = parseCheck(body['Check'], node.value.Node, lastIndex);
    if (!c.ok) return prefixed('Check', c);
    checks.push(c.value);
  }
  if (has(body, 'Checks') && body['Checks'] !== null) {
    const list = body['Checks'];
    if (!Array.isArray(list)) return bad('Checks', false, `field "Checks" must be a list of checks, got ${describeValue(list)}`);
    for (let i = 0; i < list.length; i++) {
      const c = parseCheck(list[i], node.value.Node, lastIndex);
      if (!c.ok) return prefixed(`Checks[${i}]`, c);
      checks.push(c.value);
    }
  }
  return { ok: true, value: { node: node.value, service, checks } };
}

/** A stored node row (a node-only Register body). */
export function parseNodeBody(body: unknown): Parsed<CatalogNode> {
  if (!isPlainMap(body)) return bad(undefined, false, `body must be a map, got ${describeValue(body)}`);
  return parseNodeFields(body, 'NodeMeta', 0);
}

export function parseServiceBody(body: unknown): Parsed<NodeService> {
  return parseService(body, 0);
}

export function parseCheckBody(body: unknown): Parsed<HealthCheck> {
  if (!isPlainMap(body)) return bad(undefined, false, `body must be a map, got ${describeValue(body)}`);
  const node = text(body, 'Node', true);
  if (!node.ok) return node;
  return parseCheck(body, node.value, 0);
}

function prefixed<T>(field: string, failure: Parsed<T> & { ok: false }): Parsed<never> {
  return bad(failure.field === undefined ? field : `${field}.${failure.field}`, failure.missing, `${field}: ${failure.message}`);
}

function name(body: Record<string, unknown>, field: string, required: boolean): Parsed<string> {
  const t = text(body, field, required);
  if (!t.ok) return t;
  if (!required && t.value === '') return t;
  const problem = catalogNameProblem(t.value);
  return problem === undefined ? t : bad(field, false, `field "${field}" ${problem}`);
}

function indexes(body: Record<string, unknown>, lastIndex: number): Parsed<{ CreateIndex: number; ModifyIndex: number }> {
  const c = uint(body, 'CreateIndex', false);
  if (!c.ok) return c;
  const m = uint(body, 'ModifyIndex', false);
  if (!m.ok) return m;
  const modify = m.value === 0 ? lastIndex : m.value;
  const create = c.value === 0 ? modify : c.value;
  if (create > modify) return bad('CreateIndex', false, `field "CreateIndex" (${create}) is above "ModifyIndex" (${modify})`);
  return { ok: true, value: { CreateIndex: create, ModifyIndex: modify } };
}

function parseNodeFields(body: Record<string, unknown>, metaField: string, lastIndex: number): Parsed<CatalogNode> {
  const node = name(body, 'Node', true);
  if (!node.ok) return node;
  const id = text(body, 'ID', false);
  if (!id.ok) return id;
  const address = text(body, 'Address', false);
  if (!address.ok) return address;
  const dc = text(body, 'Datacenter', false);
  if (!dc.ok) return dc;
  const tagged = stringMap(body, 'TaggedAddresses');
  if (!tagged.ok) return tagged;
  const meta = stringMap(body, metaField);
  if (!meta.ok) return meta;
  const ix = indexes(body, lastIndex);
  if (!ix.ok) return ix;
  return {
    ok: true,
    value: { ID: id.value, Node: node.value, Address: address.value, Datacenter: dc.value, TaggedAddresses: tagged.value, Meta: meta.value, ...ix.value },
  };
}

function parseService(raw: unknown, lastIndex: number): Parsed<NodeService> {
  if (!isPlainMap(raw)) return bad(undefined, false, `must be a map, got ${describeValue(raw)}`);
  const kind = text(raw, 'Kind', false);
  if (!kind.ok) return kind;
  const service = text(raw, 'Service', true);
  if (!service.ok) return service;
  if (service.value === '') return bad('Service', false, 'field "Service" (the service name) is empty');
  const id = name(raw, 'ID', false);
  if (!id.ok) return id;
  const tags = texts(raw, 'Tags');
  if (!tags.ok) return tags;
  const address = text(raw, 'Address', false);
  if (!address.ok) return address;
  const tagged = serviceAddresses(raw, 'TaggedAddresses');
  if (!tagged.ok) return tagged;
  const meta = stringMap(raw, 'Meta');
  if (!meta.ok) return meta;
  const port = uint(raw, 'Port', false);
  if (!port.ok) return port;
  const weights = parseWeights(raw);
  if (!weights.ok) return weights;
  const eto = bool(raw, 'EnableTagOverride');
  if (!eto.ok) return eto;
  const ix = indexes(raw, lastIndex);
  if (!ix.ok) return ix;
  const serviceId = id.value === '' ? service.value : id.value;
  const idProblem = catalogNameProblem(serviceId);
  if (idProblem !== undefined) return bad('ID', false, `the service ID ${idProblem}`);
  return {
    ok: true,
    value: {
      Kind: kind.value, ID: serviceId, Service: service.value, Tags: tags.value, Address: address.value, TaggedAddresses: tagged.value,
      Meta: meta.value, Port: port.value, Weights: weights.value, EnableTagOverride: eto.value, ...ix.value,
    },
  };
}

const statuses: ReadonlySet<string> = new Set<CheckStatus>(['passing', 'warning', 'critical']);

function parseCheck(raw: unknown, node: string, lastIndex: number): Parsed<HealthCheck> {
  if (!isPlainMap(raw)) return bad(undefined, false, `must be a map, got ${describeValue(raw)}`);
  const checkNode = text(raw, 'Node', false);
  if (!checkNode.ok) return checkNode;
  if (checkNode.value !== '' && checkNode.value !== node) {
    return bad('Node', false, `field "Node" (${JSON.stringify(checkNode.value)}) is not the registered node ${JSON.stringify(node)}`);
  }
  const checkName = text(raw, 'Name', false);
  if (!checkName.ok) return checkName;
  const id = text(raw, 'CheckID', false);
  if (!id.ok) return id;
  const checkId = id.value === '' ? checkName.value : id.value;
  const idProblem = catalogNameProblem(checkId);
  if (idProblem !== undefined) return bad('CheckID', false, `the check ID (CheckID, or Name without one) ${idProblem}`);
  const status = text(raw, 'Status', false);
  if (!status.ok) return status;
  if (status.value !== '' && !statuses.has(status.value)) {
    return bad('Status', false, `field "Status" must be "passing", "warning" or "critical", got ${JSON.stringify(status.value.slice(0, 64))}`);
  }
  const fields: Record<string, string> = {};
  for (const f of ['Notes', 'Output', 'ServiceID', 'ServiceName', 'Type'] as const) {
    const t = text(raw, f, false);
    if (!t.ok) return t;
    fields[f] = t.value;
  }
  const serviceTags = texts(raw, 'ServiceTags');
  if (!serviceTags.ok) return serviceTags;
  const definition = parseDefinition(raw);
  if (!definition.ok) return definition;
  const ix = indexes(raw, lastIndex);
  if (!ix.ok) return ix;
  return {
    ok: true,
    value: {
      Node: node, CheckID: checkId, Name: checkName.value, Status: (status.value === '' ? 'critical' : status.value) as CheckStatus,
      Notes: fields['Notes'] as string, Output: fields['Output'] as string, ServiceID: fields['ServiceID'] as string,
      ServiceName: fields['ServiceName'] as string, ServiceTags: serviceTags.value, Type: fields['Type'] as string,
      Definition: definition.value, ...ix.value,
    },
  };
}

export const emptyDefinition: CheckDefinition = { HTTP: '', Method: '', TLSSkipVerify: false, TCP: '', Interval: 0, Timeout: 0, DeregisterCriticalServiceAfter: 0 };

function parseDefinition(raw: Record<string, unknown>): Parsed<CheckDefinition> {
  if (!has(raw, 'Definition') || raw['Definition'] === null) return { ok: true, value: emptyDefinition };
  const d = raw['Definition'];
  if (!isPlainMap(d)) return bad('Definition', false, `field "Definition" must be a map, got ${describeValue(d)}`);
  const out: Record<string, unknown> = {};
  for (const f of ['HTTP', 'Method', 'TCP'] as const) {
    const t = text(d, f, false);
    if (!t.ok) return prefixed('Definition', t);
    out[f] = t.value;
  }
  const skip = bool(d, 'TLSSkipVerify');
  if (!skip.ok) return prefixed('Definition', skip);
  for (const f of ['Interval', 'Timeout', 'DeregisterCriticalServiceAfter'] as const) {
    const n = uint(d, f, false);
    if (!n.ok) return prefixed('Definition', n);
    out[f] = n.value;
  }
  return { ok: true, value: { ...(out as Omit<CheckDefinition, 'TLSSkipVerify'>), TLSSkipVerify: skip.value } };
}

function parseWeights(raw: Record<string, unknown>): Parsed<ServiceWeights> {
  if (!has(raw, 'Weights') || raw['Weights'] === null) return { ok: true, value: { Passing: 1, Warning: 1 } };
  const w = raw['Weights'];
  if (!isPlainMap(w)) return bad('Weights', false, `field "Weights" must be a map {Passing, Warning}, got ${describeValue(w)}`);
  const passing = uint(w, 'Passing', false);
  if (!passing.ok) return prefixed('Weights', passing);
  const warning = uint(w, 'Warning', false);
  if (!warning.ok) return prefixed('Weights', warning);
  return { ok: true, value: { Passing: passing.value, Warning: warning.value } };
}

function bool(body: Record<string, unknown>, field: string): Parsed<boolean> {
  if (!has(body, field) || body[field] === null) return { ok: true, value: false };
  const v = body[field];
  return typeof v === 'boolean' ? { ok: true, value: v } : bad(field, false, `field "${field}" must be a boolean, got ${describeValue(v)}`);
}

/** A map of strings to strings (nil or absent: empty). */
function stringMap(body: Record<string, unknown>, field: string): Parsed<Record<string, string>> {
  if (!has(body, field) || body[field] === null) return { ok: true, value: {} };
  const m = body[field];
  if (!isPlainMap(m)) return bad(field, false, `field "${field}" must be a map of strings, got ${describeValue(m)}`);
  const out: Record<string, string> = {};
  for (const key of Object.keys(m)) {
    if (key === '__proto__') return bad(field, false, `field "${field}" has the key "__proto__", which is not allowed`);
    const v = text(m, key, true);
    if (!v.ok) return bad(field, false, `field "${field}" key ${JSON.stringify(key.slice(0, 64))}: ${v.message}`);
    if (!isWellFormedText(key)) return bad(field, false, `field "${field}" has a key that is not valid text`);
    out[key] = v.value;
  }
  return { ok: true, value: out };
}

function serviceAddresses(body: Record<string, unknown>, field: string): Parsed<Record<string, ServiceAddress>> {
  if (!has(body, field) || body[field] === null) return { ok: true, value: {} };
  const m = body[field];
  if (!isPlainMap(m)) return bad(field, false, `field "${field}" must be a map of {Address, Port}, got ${describeValue(m)}`);
  const out: Record<string, ServiceAddress> = {};
  for (const key of Object.keys(m)) {
    if (key === '__proto__') return bad(field, false, `field "${field}" has the key "__proto__", which is not allowed`);
    const v = m[key];
    if (!isPlainMap(v)) return bad(field, false, `field "${field}" key ${JSON.stringify(key.slice(0, 64))} must be a map {Address, Port}, got ${describeValue(v)}`);
    const address = text(v, 'Address', false);
    if (!address.ok) return prefixed(field, address);
    const port = uint(v, 'Port', false);
    if (!port.ok) return prefixed(field, port);
    out[key] = { Address: address.value, Port: port.value };
  }
  return { ok: true, value: out };
}
