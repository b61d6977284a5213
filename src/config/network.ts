// Addresses in the agent configuration: IP literals, host:port pairs, and the private-IP pick Consul
// makes when the bind address is a wildcard. Pure functions over strings, except that
// `privateIpv4Addresses` reads the machine's interfaces (it never writes anything).

import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';

/** The IP in `s` without IPv6 brackets ("[::1]" → "::1"), or undefined when `s` is not an IP literal. */
export function parseIp(s: string): string | undefined {
  const bare = s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1) : s;
  return isIP(bare) === 0 ? undefined : bare;
}

/** True for 0.0.0.0 and :: (any spelling of the IPv6 wildcard). */
export function isWildcardIp(ip: string): boolean {
  if (ip === '0.0.0.0') return true;
  return isIP(ip) === 6 && ip.split(':').every((group) => /^0*$/.test(group));
}

/** "host:port", with brackets around an IPv6 host. */
export function joinHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

export type HostPortResult = { readonly ok: true; readonly host: string; readonly port: number } | { readonly ok: false; readonly expected: string };

const hostnamePattern = /^(?=.{1,253}$)[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*\.?$/;

/**
 * A server address as written in retry_join: "10.0.0.5:8300", "10.0.0.5" (port `defaultPort`),
 * "[fd00::5]:8300", "fd00::5", "server-1.example.com:8300". Host names are kept as written; the
 * agent resolves them when it connects.
 */
export function parseHostPort(s: string, defaultPort: number): HostPortResult {
  const expected = 'a server address "host:port" (IPv6 as "[addr]:port"; the port defaults to ' + `${defaultPort})`;
  if (s.includes('provider=')) {
    return { ok: false, expected: 'a server address "host:port"; cloud auto-join ("provider=...") is not supported by Conclave' };
  }
  let host: string;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(s);
  if (bracketed !== null) {
    host = bracketed[1]!;
    portText = bracketed[2];
    if (isIP(host) !== 6) return { ok: false, expected };
  } else if (isIP(s) === 6) {
    host = s; // a bare IPv6 address: no port
  } else {
    const colon = s.lastIndexOf(':');
    host = colon === -1 ? s : s.slice(0, colon);
    portText = colon === -1 ? undefined : s.slice(colon + 1);
    if (isIP(host) === 0 && !hostnamePattern.test(host)) return { ok: false, expected };
  }
  if (portText === undefined) return { ok: true, host, port: defaultPort };
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= 65535)) return { ok: false, expected: `${expected}, with a port from 1 to 65535` };
  return { ok: true, host, port };
}

/** RFC 1918 private ranges plus 100.64.0.0/10 (shared address space), as Consul's GetPrivateIP takes them. */
export function isPrivateIpv4(ip: string): boolean {
  if (isIP(ip) !== 4) return false;
  const [a, b] = ip.split('.').map(Number) as [number, number, number, number];
  return a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127);
}

/** The machine's private IPv4 addresses on non-loopback interfaces, without duplicates. */
export function privateIpv4Addresses(): string[] {
  const found = new Set<string>();
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.family === 'IPv4' && !a.internal && isPrivateIpv4(a.address)) found.add(a.address);
    }
  }
  return [...found];
}
