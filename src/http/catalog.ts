// /v1/catalog/*: Consul's agent/catalog_endpoint.go, with the checks of agent/consul/catalog_endpoint.go
// (Catalog.Register, Catalog.Deregister) that Consul's servers run before proposing.
//
//   PUT /v1/catalog/register            body {ID, Node, Address, Datacenter, TaggedAddresses, NodeMeta,
//                                       Service, Check, Checks, SkipNodeUpdate}, any case -> true
//   PUT /v1/catalog/deregister          body {Node, ServiceID, CheckID, Datacenter} -> true
//   GET /v1/catalog/nodes               [node]; blocking; ?filter
//   GET /v1/catalog/services            {name: [tag]}; blocking (?filter refused, below)
//   GET /v1/catalog/service/<name>      [service instance] (?tag repeatable: every tag must match); blocking; ?filter
//   GET /v1/catalog/node/<node>         {Node, Services} or null (an unknown node, 200 as in Consul); blocking;
//                                       ?filter on the Services map's values
//   GET /v1/catalog/node-services/<node> {Node, Services: [...]}, or 404 `Node not found`; blocking; ?filter
//                                       on the Services list
//
// The FSM shapes every read's JSON (ServerApi.catalogRead); this file parses, validates and answers.
// A register or deregister goes to the datacenter its body names (Consul's args.Datacenter), else to
// the one ?dc names, else to ours. ?near and ?node-meta are accepted and ignored.
// ?filter (filter.ts: Consul's go-bexpr expressions, selectors the Go field names of the answer's
// elements) is built before the read, a bad one a 400 `Failed to create boolean expression evaluator:
// ...` with nothing read, and keeps the elements it matches (catalogReply, shared with health.ts). On
// /v1/catalog/services a non-empty ?filter is a 400: Consul filters the service instances before
// grouping their tags by name, and that answer no longer holds them (filter /v1/catalog/service/<name>).
//
// Register, as Consul's Catalog.Register (checks in that order, after the whole body decoded):
// - Node and Address are required ("Must provide node and address", Consul's text up to 1.0; later
//   releases split it and allow no Address with SkipNodeUpdate);
// - a node ID, if given, is a UUID ("Bad node ID: ..."); the service name is required when a Service is
//   given ("Must provide service name with ID"); the service ID defaults to the name; a service address
//   of 0.0.0.0 or :: is "Invalid service address";
// - `Check` is appended to `Checks`; a check's CheckID defaults to its Name; its Node, if given, must be
//   the registered node; Status '' is 'critical' (Consul's default); Type is '' (the FSM fills
//   ServiceName/ServiceTags from the service).
// Deliberate differences, each refusing what Consul would answer with a 500 or store surprisingly:
// - node names, service IDs and check IDs must not contain NUL nor exceed 256 bytes (they are database
//   keys); a check with neither CheckID nor Name, or whose Node is another node, is a 400;
// - a check status other than passing/warning/critical is a 400 (Consul stores it);
// - services of a Kind other than '' (Connect proxies, gateways) are refused: their Proxy settings are
//   not modelled, and storing the rest would lose them;
// - a number with a fraction where Go wants an integer (Port, Weights) is refused, as Go refuses it;
//   Definition durations take a Go duration string or whole nanoseconds, as Consul's UnmarshalJSON does.

import { isWellFormedText, parseGoDuration } from '../base/index.js';
import type { CatalogQuery, CheckDefinition, CheckStatus, Command, NewCheck, NewNode, NewService, ServiceAddress } from '../fsm/index.js';
import type { ReadOptions } from '../server/index.js';
import { catalogNameProblem } from '../snapshot/index.js';
import { badRequest, HttpError } from './errors.js';
import { filterList, filterMapValues, filterParam, filterSchemas, type FieldType, type Filter } from './filter.js';
import { goQuote, isJsonObject } from './json.js';
import { decodeBody, Fields } from './go-json.js';
import { metaHeaders, parseReadOptions } from './params.js';
import { jsonReply, textReply, type Reply, type RequestContext } from './reply.js';

/** Largest register or deregister body (as session create's). */
const writeBodyMaxBytes = 64 * 1024;

export type RegisterCommand = Extract<Command, { type: 'catalog-register' }>;
export type DeregisterCommand = Extract<Command, { type: 'catalog-deregister' }>;

/** A parsed catalog write: the command, and the datacenter it is for (never ''). */
export interface CatalogWrite<C extends Command> {
  readonly datacenter: string;
  readonly command: C;
}

export async function handleCatalogRegister(ctx: RequestContext): Promise<Reply> {
  const body = await readWriteBody(ctx);
  const { datacenter, command } = parseRegisterBody(body, defaultDatacenter(ctx));
  await applyWrite(ctx, datacenter, command);
  return jsonReply(ctx, true);
}

export async function handleCatalogDeregister(ctx: RequestContext): Promise<Reply> {
  const body = await readWriteBody(ctx);
  const { datacenter, command } = parseDeregisterBody(body, defaultDatacenter(ctx));
  await applyWrite(ctx, datacenter, command);
  return jsonReply(ctx, true);
}

export async function handleCatalogNodes(ctx: RequestContext): Promise<Reply> {
  return catalogReply(ctx, parseReadOptions(ctx), { what: 'nodes' });
}

export async function handleCatalogServices(ctx: RequestContext): Promise<Reply> {
  return catalogReply(ctx, parseReadOptions(ctx), { what: 'services' });
}

export async function handleCatalogService(ctx: RequestContext): Promise<Reply> {
  const options = parseReadOptions(ctx);
  const name = serviceArgument(ctx, '/v1/catalog/service/');
  return catalogReply(ctx, options, { what: 'service', name, tags: tagsOf(ctx) });
}

/** An unknown node is 200 `null`, as Consul answers it (a nil *NodeServices). */
export async function handleCatalogNode(ctx: RequestContext): Promise<Reply> {
  const options = parseReadOptions(ctx);
  const node = nodeArgument(ctx, '/v1/catalog/node/');
  return catalogReply(ctx, options, { what: 'node', node });
}

export async function handleCatalogNodeServices(ctx: RequestContext): Promise<Reply> {
  const options = parseReadOptions(ctx);
  const node = nodeArgument(ctx, '/v1/catalog/node-services/');
  const filter = catalogFilter(ctx, 'node-services');
  const { meta, json } = await ctx.api.catalogRead({ what: 'node-services', node }, options);
  if (json === null) return textReply(404, 'Node not found', metaHeaders(meta));
  return jsonReply(ctx, filter(json), 200, metaHeaders(meta));
}

// ---------------------------------------------------------------------------------------------------
// Shared with health.ts: path arguments, ?tag, and the read itself.
// ---------------------------------------------------------------------------------------------------

/**
 * Runs one catalog read and answers its JSON, narrowed by ?filter, with the X-Consul-* headers. The
 * filter is built before the read (a bad one is a 400 and nothing is read), as Consul's RPC endpoints
 * build it before their blocking query.
 */
export async function catalogReply(ctx: RequestContext, options: ReadOptions, query: CatalogQuery): Promise<Reply> {
  const filter = catalogFilter(ctx, query.what);
  const { meta, json } = await ctx.api.catalogRead(query, options);
  return jsonReply(ctx, filter(json), 200, metaHeaders(meta));
}

/**
 * What ?filter keeps of each read's JSON: the element type its selectors name (Consul's) and where the
 * elements are. /v1/catalog/services has none: Consul filters the service instances before grouping
 * their tags by name, and its answer ({name: [tag]}) no longer holds them.
 */
const catalogFilters: { readonly [W in CatalogQuery['what']]: { readonly schema: FieldType; readonly apply: (f: Filter, json: unknown) => unknown } | undefined } = {
  nodes: { schema: filterSchemas.node, apply: filterList },
  services: undefined,
  service: { schema: filterSchemas.catalogService, apply: filterList },
  node: { schema: filterSchemas.service, apply: (f, json) => (isJsonObject(json) ? { ...json, Services: filterMapValues(f, json['Services']) } : json) },
  'node-services': { schema: filterSchemas.service, apply: (f, json) => (isJsonObject(json) ? { ...json, Services: filterList(f, json['Services']) } : json) },
  'health-node': { schema: filterSchemas.check, apply: filterList },
  'health-checks': { schema: filterSchemas.check, apply: filterList },
  'health-state': { schema: filterSchemas.check, apply: filterList },
  'health-service': { schema: filterSchemas.healthService, apply: filterList },
};

/** The request's ?filter for a read of `what`, as a function of the read's JSON (the identity without one). */
function catalogFilter(ctx: RequestContext, what: CatalogQuery['what']): (json: unknown) => unknown {
  const target = catalogFilters[what];
  if (target === undefined) {
    if (ctx.query.get('filter') !== '') {
      throw badRequest('?filter is not supported on /v1/catalog/services by Conclave (its answer no longer holds the instances ' +
        'a filter selects); filter /v1/catalog/service/<name> or /v1/health/service/<name> instead');
    }
    return (json) => json;
  }
  const filter = filterParam(ctx, target.schema);
  return filter === undefined ? (json) => json : (json) => target.apply(filter, json);
}

/** The node named by the rest of the path: "Missing node name" when empty (Consul's), a 400 when it cannot be a node. */
export function nodeArgument(ctx: RequestContext, prefix: string): string {
  const node = ctx.path.slice(prefix.length);
  if (node === '') throw badRequest('Missing node name');
  const problem = catalogNameProblem(node);
  if (problem !== undefined) throw badRequest(`Node name ${problem}`);
  return node;
}

/** The service named by the rest of the path: "Missing service name" when empty (Consul's). */
export function serviceArgument(ctx: RequestContext, prefix: string): string {
  const name = ctx.path.slice(prefix.length);
  if (name === '') throw badRequest('Missing service name');
  return name;
}

/** Every ?tag, in order (Consul's params["tag"]); none: no tag filter. */
export function tagsOf(ctx: RequestContext): string[] {
  return ctx.query.pairs.filter(([name]) => name === 'tag').map(([, value]) => value);
}

// ---------------------------------------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------------------------------------

function readWriteBody(ctx: RequestContext): Promise<Buffer> {
  return ctx.readBody(writeBodyMaxBytes, () => new HttpError(413, `Request body too large, max size: ${writeBodyMaxBytes} bytes`));
}

/** Where a write without a Datacenter in its body goes: ?dc, else this agent's datacenter. */
function defaultDatacenter(ctx: RequestContext): string {
  const dc = ctx.query.get('dc');
  return dc === '' ? ctx.api.datacenter : dc;
}

async function applyWrite(ctx: RequestContext, datacenter: string, command: Command): Promise<void> {
  const result = await ctx.api.apply(command, { dc: datacenter === ctx.api.datacenter ? '' : datacenter });
  if (result.kind === 'catalog' && result.error !== '') throw badRequest(result.error);
}

const statuses: ReadonlySet<string> = new Set<CheckStatus>(['passing', 'warning', 'critical']);

const emptyDefinition: CheckDefinition = {
  HTTP: '', Method: '', TLSSkipVerify: false, TCP: '', Interval: 0, Timeout: 0, DeregisterCriticalServiceAfter: 0,
};

/**
 * The body of PUT /v1/catalog/register as the register command, checked as Consul's Catalog.Register
 * checks it (see the top of this file). `defaultDatacenter` applies when the body names none. Throws
 * HttpError 400 with the reason.
 */
export function parseRegisterBody(body: Buffer, defaultDatacenter: string): CatalogWrite<RegisterCommand> {
  const top = decodeBody(body);
  // Decode everything first, as Go's decoder does before Consul checks anything.
  const nodeName = top.text('Node');
  const address = top.text('Address');
  const id = top.text('ID');
  const datacenter = top.text('Datacenter');
  const taggedAddresses = top.stringMap('TaggedAddresses');
  const nodeMeta = top.stringMap('NodeMeta');
  const skipNodeUpdate = top.bool('SkipNodeUpdate');
  const rawService = top.struct('Service');
  const service = rawService === undefined ? undefined : decodeService(rawService);
  const rawChecks = top.structList('Checks');
  const rawCheck = top.struct('Check');
  const checks = [...rawChecks, ...(rawCheck === undefined ? [] : [rawCheck])].map(decodeCheck);

  if (nodeName === '' || address === '') throw badRequest('Must provide node and address');
  const nodeProblem = catalogNameProblem(nodeName);
  if (nodeProblem !== undefined) throw badRequest(`Node name ${nodeProblem}`);
  if (id !== '') {
    const bad = uuidProblem(id);
    if (bad !== undefined) throw badRequest(`Bad node ID: ${bad}`);
  }
  if (service !== undefined) checkService(service);
  for (const check of checks) checkCheck(check, nodeName);

  const dc = datacenter === '' ? defaultDatacenter : datacenter;
  const node: NewNode = { ID: id, Node: nodeName, Address: address, Datacenter: dc, TaggedAddresses: taggedAddresses, Meta: nodeMeta };
  return {
    datacenter: dc,
    command: {
      type: 'catalog-register',
      node,
      skipNodeUpdate,
      ...(service === undefined ? {} : { service: service.value }),
      checks: checks.map((c) => c.value),
    },
  };
}

/** The body of PUT /v1/catalog/deregister as the deregister command. Throws HttpError 400 with the reason. */
export function parseDeregisterBody(body: Buffer, defaultDatacenter: string): CatalogWrite<DeregisterCommand> {
  const top = decodeBody(body);
  const node = top.text('Node');
  const serviceId = top.text('ServiceID');
  const checkId = top.text('CheckID');
  const datacenter = top.text('Datacenter');
  if (node === '') throw badRequest('Must provide node');
  const nodeProblem = catalogNameProblem(node);
  if (nodeProblem !== undefined) throw badRequest(`Node name ${nodeProblem}`);
  // Nothing stored can carry such an ID; refusing it keeps the FSM's keys what they claim to be.
  for (const [what, value] of [['ServiceID', serviceId], ['CheckID', checkId]] as const) {
    const problem = value === '' ? undefined : catalogNameProblem(value);
    if (problem !== undefined) throw badRequest(`${what} ${problem}`);
  }
  return {
    datacenter: datacenter === '' ? defaultDatacenter : datacenter,
    command: { type: 'catalog-deregister', node, serviceId, checkId },
  };
}

/** A service as decoded, its ID not yet defaulted. */
export interface DecodedService {
  readonly value: NewService;
  readonly explicitId: string;
}

/** A service body; its name is `Service` in the catalog's RegisterRequest, `Name` in the agent's ServiceDefinition. */
export function decodeService(s: Fields, nameField: 'Service' | 'Name' = 'Service'): DecodedService {
  const name = s.text(nameField);
  const id = s.text('ID');
  const weights = s.struct('Weights');
  const value: NewService = {
    Kind: s.text('Kind'),
    ID: id === '' ? name : id,
    Service: name,
    Tags: s.texts('Tags'),
    Address: s.text('Address'),
    TaggedAddresses: s.map('TaggedAddresses', (v, where) => {
      const a = Fields.of(v, where);
      return { Address: a?.text('Address') ?? '', Port: a?.uint('Port') ?? 0 } satisfies ServiceAddress;
    }),
    Meta: s.stringMap('Meta'),
    Port: s.uint('Port'),
    // Consul's default when no Weights are given; given ones are taken as they are (Go's zero for a missing field).
    Weights: weights === undefined ? { Passing: 1, Warning: 1 } : { Passing: weights.uint('Passing'), Warning: weights.uint('Warning') },
    EnableTagOverride: s.bool('EnableTagOverride'),
  };
  return { value, explicitId: id };
}

export function checkService(s: DecodedService): void {
  const { value } = s;
  if (value.Kind !== '') {
    throw badRequest(`Service Kind ${goQuote(value.Kind)} is not supported: only typical services (Kind "") can be registered`);
  }
  if (value.Service === '') throw badRequest('Must provide service name with ID');
  const problem = catalogNameProblem(value.ID);
  if (problem !== undefined) throw badRequest(`Service ID ${problem}${s.explicitId === '' ? ' (it defaults to the service name)' : ''}`);
  if (isAnyAddress(value.Address)) throw badRequest('Invalid service address');
}

/** A check as decoded: where it was in the body, its Node as given, its fields with CheckID defaulted. */
interface DecodedCheck {
  readonly where: string;
  readonly node: string;
  readonly status: string;
  readonly value: NewCheck;
}

function decodeCheck(c: Fields): DecodedCheck {
  const name = c.text('Name');
  const id = c.text('CheckID');
  const status = c.text('Status');
  const d = c.struct('Definition');
  const definition: CheckDefinition = d === undefined ? emptyDefinition : {
    HTTP: d.text('HTTP'),
    Method: d.text('Method'),
    TLSSkipVerify: d.bool('TLSSkipVerify'),
    TCP: d.text('TCP'),
    Interval: d.duration('Interval'),
    Timeout: d.duration('Timeout'),
    DeregisterCriticalServiceAfter: d.duration('DeregisterCriticalServiceAfter'),
  };
  return {
    where: c.path,
    node: c.text('Node'),
    status,
    value: {
      CheckID: id === '' ? name : id,
      Name: name,
      Status: (status === '' ? 'critical' : status) as CheckStatus,
      Notes: c.text('Notes'),
      Output: c.text('Output'),
      ServiceID: c.text('ServiceID'),
      // A check registered through the catalog has no type (Consul's agent sets it for the checks it runs).
      Type: '',
      Definition: definition,
    },
  };
}

function checkCheck(c: DecodedCheck, node: string): void {
  if (c.node !== '' && c.node !== node) {
    throw badRequest(`${c.where}: its Node ${goQuote(c.node)} is not the node being registered, ${goQuote(node)}; leave it out or name that node`);
  }
  if (c.value.CheckID === '') throw badRequest(`${c.where}: Must provide check Name or CheckID`);
  const problem = catalogNameProblem(c.value.CheckID);
  if (problem !== undefined) throw badRequest(`${c.where}: CheckID ${problem}`);
  if (c.status !== '' && !statuses.has(c.status)) {
    throw badRequest(`${c.where}: Bad check status ${goQuote(c.status)}: must be "passing", "warning" or "critical"`);
  }
  if (c.value.ServiceID !== '') {
    const serviceProblem = catalogNameProblem(c.value.ServiceID);
    if (serviceProblem !== undefined) throw badRequest(`${c.where}: ServiceID ${serviceProblem}`);
  }
}

/** Consul's ipaddr.IsAny: the unspecified IPv4 or IPv6 address, as written. */
function isAnyAddress(address: string): boolean {
  return address === '0.0.0.0' || address === '::' || address === '[::]';
}

/** hashicorp/go-uuid's ParseUUID, its error text, or undefined for a good UUID (either case). */
export function uuidProblem(id: string): string | undefined {
  if (Buffer.byteLength(id, 'utf8') !== 36) return 'uuid string is wrong length';
  if (id[8] !== '-' || id[13] !== '-' || id[18] !== '-' || id[23] !== '-') return 'uuid is improperly formatted';
  const hex = id.slice(0, 8) + id.slice(9, 13) + id.slice(14, 18) + id.slice(19, 23) + id.slice(24);
  const bad = /[^0-9a-fA-F]/.exec(hex)?.[0];
  if (bad === undefined) return undefined;
  const code = bad.codePointAt(0) as number;
  const printable = code >= 0x20 && code < 0x7f;
  return `encoding/hex: invalid byte: U+${code.toString(16).toUpperCase().padStart(4, '0')}${printable ? ` '${bad}'` : ''}`;
}


