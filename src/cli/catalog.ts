// `conclave catalog datacenters|nodes|services`: Consul's command/catalog/list/{dc,nodes,services}, over
// the agent's catalog endpoints, with Consul's flags, columns and texts.
//
//   catalog datacenters                          one datacenter per line
//   catalog nodes [-detailed] [-service=NAME]    columns Node, ID (up to its first "-"), Address, DC;
//                                                -detailed: the whole ID, TaggedAddresses and Meta
//   catalog services [-node=NODE] [-tags]        service names, sorted, one per line; -tags: each name's
//                                                tags beside it, comma-separated, in an aligned column
//
// Nothing matching is not an error: Consul's "No ... match the given query - try expanding your search."
// goes to stderr and the status is 0. Any failure is one line on stderr and status 1. Consul's -near,
// -node-meta and -filter are not supported (a flag error, status 1).

import { lastFlag, type FlagSpec, type ParsedFlags } from '../config/index.js';
import { columnize, dispatch, type Command, type OperatorDeps } from './operator.js';
import { tabwrite } from './snapshot/format.js';
import { errorText, httpClientFlags, serverFlags } from './snapshot/http-client.js';

const requestMs = 60_000;

/** A node as /v1/catalog/nodes lists it (the fields the table shows). */
export interface NodeJson {
  readonly ID: string;
  readonly Node: string;
  readonly Address: string;
  readonly Datacenter: string;
  readonly TaggedAddresses: Readonly<Record<string, string>> | null;
  readonly Meta: Readonly<Record<string, string>> | null;
}

/** An instance as /v1/catalog/service/<name> lists it: the node's fields, Meta named NodeMeta. */
interface ServiceNodeJson extends Omit<NodeJson, 'Meta'> {
  readonly NodeMeta: Readonly<Record<string, string>> | null;
}

/** GET /v1/catalog/node/<node>: the node and its services by ID, or null for an unknown node. */
interface NodeServicesJson {
  readonly Services: Readonly<Record<string, { readonly Service: string; readonly Tags: readonly string[] | null }>> | null;
}

const bool = (name: string, usage: string): FlagSpec => ({ name, kind: 'bool', usage, defaultText: 'false' });

function staleQuery(flags: ParsedFlags): string {
  return lastFlag(flags, 'stale') === true ? '?stale=' : '';
}

function stringFlag(flags: ParsedFlags, name: string): string {
  const v = lastFlag(flags, name);
  return typeof v === 'string' ? v : '';
}

const datacentersCommand: Command = {
  usage: `Usage: conclave catalog datacenters [options]

  Lists the datacenters this agent knows: its own and those reached through
  retry_join_wan.`,
  flags: httpClientFlags,
  run: async (client, _flags, out) => {
    const r = await client.json<string[]>({ method: 'GET', path: '/v1/catalog/datacenters', timeoutMs: requestMs });
    if (r.value.length === 0) return 'No datacenters found';
    for (const dc of r.value) out(dc);
    return undefined;
  },
};

const nodesCommand: Command = {
  usage: `Usage: conclave catalog nodes [options]

  Retrieves the list of nodes registered in a given datacenter. By default,
  the datacenter of the local agent is queried.

  To retrieve the list of nodes:

      $ conclave catalog nodes

  To print detailed information including full node IDs, tagged addresses,
  and metadata information:

      $ conclave catalog nodes -detailed

  To list nodes which are running a particular service:

      $ conclave catalog nodes -service=web`,
  flags: [
    ...httpClientFlags,
    ...serverFlags,
    bool('detailed', 'Output detailed information about the nodes including their addresses and metadata.'),
    { name: 'service', kind: 'string', valueName: 'name', usage: 'Service name to filter nodes. Only nodes which are providing the given service will be returned.' },
  ],
  run: async (client, flags, out, note) => {
    const service = stringFlag(flags, 'service');
    let nodes: NodeJson[];
    if (service !== '') {
      try {
        const r = await client.json<ServiceNodeJson[]>({ method: 'GET', path: `/v1/catalog/service/${encodeURIComponent(service)}${staleQuery(flags)}`, timeoutMs: requestMs });
        nodes = r.value.map((s) => ({ ID: s.ID, Node: s.Node, Address: s.Address, Datacenter: s.Datacenter, TaggedAddresses: s.TaggedAddresses, Meta: s.NodeMeta }));
      } catch (err) {
        return `Error listing nodes for service: ${errorText(err)}`;
      }
    } else {
      try {
        nodes = (await client.json<NodeJson[]>({ method: 'GET', path: `/v1/catalog/nodes${staleQuery(flags)}`, timeoutMs: requestMs })).value;
      } catch (err) {
        return `Error listing nodes: ${errorText(err)}`;
      }
    }
    if (nodes.length === 0) {
      note('No nodes match the given query - try expanding your search.');
      return undefined;
    }
    for (const line of nodeLines(nodes, lastFlag(flags, 'detailed') === true)) out(line);
    return undefined;
  },
};

const servicesCommand: Command = {
  usage: `Usage: conclave catalog services [options]

  Retrieves the list of services registered in a given datacenter. By
  default, the datacenter of the local agent is queried.

  To retrieve the list of services:

      $ conclave catalog services

  To include the services' tags in the output:

      $ conclave catalog services -tags

  To list services which run on a particular node:

      $ conclave catalog services -node=web`,
  flags: [
    ...httpClientFlags,
    ...serverFlags,
    { name: 'node', kind: 'string', valueName: 'name', usage: 'Node name for which to list services.' },
    bool('tags', "Display each service's tags as a comma-separated list beside each service entry."),
  ],
  run: async (client, flags, out, note) => {
    const node = stringFlag(flags, 'node');
    const services = new Map<string, string[]>();
    if (node !== '') {
      try {
        const r = await client.json<NodeServicesJson | null>({ method: 'GET', path: `/v1/catalog/node/${encodeURIComponent(node)}${staleQuery(flags)}`, timeoutMs: requestMs });
        // Instances of one service on the node pool their tags, duplicates kept (as Consul does).
        for (const s of Object.values(r.value?.Services ?? {})) services.set(s.Service, [...(services.get(s.Service) ?? []), ...(s.Tags ?? [])]);
      } catch (err) {
        return `Error listing services for node: ${errorText(err)}`;
      }
    } else {
      try {
        const r = await client.json<Record<string, string[] | null>>({ method: 'GET', path: `/v1/catalog/services${staleQuery(flags)}`, timeoutMs: requestMs });
        for (const [name, tags] of Object.entries(r.value)) services.set(name, [...(tags ?? [])]);
      } catch (err) {
        return `Error listing services: ${errorText(err)}`;
      }
    }
    if (services.size === 0) {
      note('No services match the given query - try expanding your search.');
      return undefined;
    }
    for (const line of serviceLines(services, lastFlag(flags, 'tags') === true)) out(line);
    return undefined;
  },
};

const catalogCommands: Readonly<Record<string, Command>> = {
  datacenters: datacentersCommand,
  nodes: nodesCommand,
  services: servicesCommand,
};

export function catalogHelp(): string {
  return `Usage: conclave catalog <subcommand> [options]

  Interacts with the catalog, as consul catalog does.

Subcommands:
    datacenters    Lists all known datacenters
    nodes          Lists all nodes in the given datacenter
    services       Lists all registered services in a datacenter
`;
}

export function runCatalogCommand(args: readonly string[], deps: OperatorDeps): Promise<number> {
  return dispatch('catalog', catalogCommands, args, deps, catalogHelp());
}

/** Go's string order (bytes of UTF-8), as sort.Strings sorts. */
function goCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Consul's mapToKV: "k=v" pairs sorted by key, joined by ", ". */
function keyValues(m: Readonly<Record<string, string>> | null): string {
  return Object.keys(m ?? {}).sort(goCompare).map((k) => `${k}=${m?.[k] ?? ''}`).join(', ');
}

/**
 * The table of `consul catalog nodes` (catalog.NodesHeader/NodeRow through columnize): in the short form
 * the ID is cut at its first "-" (a UUID's first 8 hex digits). Nodes in the order the agent gave them.
 */
export function nodeLines(nodes: readonly NodeJson[], detailed: boolean): string[] {
  const rows = [detailed ? ['Node', 'ID', 'Address', 'DC', 'TaggedAddresses', 'Meta'] : ['Node', 'ID', 'Address', 'DC']];
  for (const n of nodes) {
    const dash = n.ID.indexOf('-');
    const id = detailed || dash <= 0 ? n.ID : n.ID.slice(0, dash);
    const row = [n.Node, id, n.Address, n.Datacenter];
    if (detailed) row.push(keyValues(n.TaggedAddresses), keyValues(n.Meta));
    // columnize trims every cell.
    rows.push(row.map((cell) => cell.trim()));
  }
  return columnize(rows);
}

/**
 * The lines of `consul catalog services`: names in Go's order; with -tags, each name's tags sorted and
 * comma-joined beside it through Go's tabwriter (padding 6), the whole output trimmed as Consul does.
 */
export function serviceLines(services: ReadonlyMap<string, readonly string[]>, tags: boolean): string[] {
  const names = [...services.keys()].sort(goCompare);
  if (!tags) return names;
  const text = names.map((name) => `${name}\t${[...(services.get(name) ?? [])].sort(goCompare).join(',')}\n`).join('');
  return tabwrite(text, { minwidth: 0, padding: 6 }).trim().split('\n');
}
