// What happens to a request before any handler runs, as Go's http.ServeMux and Consul's wrap() decide
// it: the path is decoded, a non-canonical path is redirected to its clean form, an unknown path gets
// Consul's 404, OPTIONS its Allow list, a method the endpoint does not register a 405. Pure: the server
// uses it for requests node parses, and also for those node refuses to parse (unknown methods) or hands
// over as tunnels (CONNECT), so every request target gets the same answer whichever way it came in.
//
// Go's ServeMux (net/http/server.go, findHandler; Go 1.22 and later, and serveMux121 before):
// - for every method but CONNECT the path is cleaned (cleanPath: path.Clean, "." and ".." segments
//   resolved, repeated slashes folded, a trailing slash kept) and, if that changed it, the answer is
//   301 Moved Permanently with Location: the clean path and the query unchanged (http.Redirect writes a
//   short HTML body for GET only, and text/html for GET and HEAD);
// - "/tree" when only "/tree/" is registered redirects to "/tree/" (all methods, CONNECT included);
//   of our paths that is "/v1/kv" (Consul registers the subtree "/v1/kv/");
// - CONNECT paths are not cleaned. An authority-form CONNECT target ("host:443") has an empty path,
//   which matches no pattern: Go's NotFound, "404 page not found".
//
// Difference: Go 1.22+ cleans the still-escaped path, so "/v1/kv/a/%2E%2E/b" reaches Consul's KV handler
// as the key "a/../b" (Go 1.21 and earlier cleaned the decoded path and redirected). We clean the
// decoded path, as Go did up to 1.21: no key with "." or ".." segments or empty segments can be named
// through the KV path in any spelling, which keeps ACL prefix rules meaning what they say. The Location
// is the clean decoded path, escaped once.

import { HttpError } from './errors.js';
import { percentDecode, Query } from './query.js';
import { textReply, type Reply } from './reply.js';
import { findRoute, unknownPathBody, type Route } from './routes.js';

/** A request the router answers itself, or the route whose handler serves it. */
export type Routing =
  | { readonly kind: 'reply'; readonly reply: Reply }
  | { readonly kind: 'route'; readonly route: Route; readonly method: string; readonly path: string; readonly query: Query };

/**
 * Routes `method` `target` (the request target as sent: origin form, or absolute form from a proxy,
 * or authority form for CONNECT). Throws HttpError 400 for a malformed path or query.
 */
export function routeRequest(method: string, target: string): Routing {
  if (target === '*') {
    // Go's server answers "OPTIONS *" itself (globalOptionsHandler); ServeMux refuses any other "*".
    return { kind: 'reply', reply: method === 'OPTIONS' ? { status: 200, headers: {}, body: '' } : { status: 400, headers: { Connection: 'close' }, body: '' } };
  }
  if (method === 'CONNECT' && !target.startsWith('/') && absoluteForm.exec(target) === null) {
    // Go parses "CONNECT host:port" as a URL with only a host: its empty path matches nothing.
    return { kind: 'reply', reply: textReply(404, '404 page not found\n', { 'X-Content-Type-Options': 'nosniff' }) };
  }
  const origin = originForm(target);
  if (!origin.startsWith('/')) throw new HttpError(400, 'Invalid request target: it must be a path starting with "/"');
  const q = origin.indexOf('?');
  const rawPath = q === -1 ? origin : origin.slice(0, q);
  const rawQuery = q === -1 ? '' : origin.slice(q + 1);
  const path = percentDecode(rawPath, false);
  if (path === undefined) {
    throw new HttpError(400, 'Invalid URL path: it has a malformed %-escape or bytes that are not UTF-8');
  }
  if (method !== 'CONNECT') {
    const clean = cleanPath(path);
    if (clean !== path) return { kind: 'reply', reply: redirect(method, clean, rawQuery) };
  }
  if (path === '/v1/kv') return { kind: 'reply', reply: redirect(method, '/v1/kv/', rawQuery) };
  const query = Query.parse(rawQuery);
  const route = findRoute(path);
  if (route === undefined) {
    // Consul's index page answers "/" itself; everything else unregistered is a 404.
    if (path === '/' && method === 'GET') {
      return { kind: 'reply', reply: textReply(200, 'Conclave: the Consul-compatible HTTP API is under /v1/ (no UI)') };
    }
    return { kind: 'reply', reply: textReply(404, unknownPathBody(path)) };
  }
  const allow = ['OPTIONS', ...route.methods].join(',');
  if (method === 'OPTIONS') return { kind: 'reply', reply: { status: 200, headers: { Allow: allow }, body: '' } };
  if (!route.methods.includes(method)) {
    return { kind: 'reply', reply: textReply(405, `method ${method} not allowed`, { Allow: allow }) };
  }
  return { kind: 'route', route, method, path, query };
}

/**
 * Go's cleanPath: a rooted path with "." and ".." segments resolved and repeated slashes folded
 * (path.Clean), the trailing slash kept when the input had one. "" becomes "/".
 */
export function cleanPath(p: string): string {
  if (p === '') return '/';
  // Already clean (the common case, every request pays for this): rooted, no empty segment, and no
  // segment starting with "." (a superset of "." and "..", which the full pass below resolves).
  if (p.charCodeAt(0) === 0x2f && !p.includes('//') && !p.includes('/.')) return p;
  const rooted = p.startsWith('/') ? p : `/${p}`;
  const out: string[] = [];
  for (const segment of rooted.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') out.pop();
    else out.push(segment);
  }
  let clean = `/${out.join('/')}`;
  if (rooted.endsWith('/') && clean !== '/') clean += '/';
  return clean;
}

/** Go's url.PathEscape as URL.EscapedPath applies it: unreserved bytes and "$&+,/:;=@" stay, the rest %XX. */
export function escapePath(path: string): string {
  let out = '';
  for (const b of Buffer.from(path, 'utf8')) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-_.~$&+,/:;=@]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** http.Redirect(w, r, url, 301) for a local url: Location, and a short HTML note for GET only. */
function redirect(method: string, cleanPathDecoded: string, rawQuery: string): Reply {
  const location = escapePath(cleanPathDecoded) + (rawQuery === '' ? '' : `?${rawQuery}`);
  const headers: Record<string, string> = { Location: location };
  if (method === 'GET' || method === 'HEAD') headers['Content-Type'] = 'text/html; charset=utf-8';
  const body = method === 'GET' ? `<a href="${htmlEscape(location)}">Moved Permanently</a>.\n\n` : '';
  return { status: 301, headers, body };
}

function htmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&#34;', "'": '&#39;' })[c] ?? c);
}

const absoluteForm = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?]*/;

/** "/path?query" from a request target, also when a proxy sends the absolute form "http://host/path". */
function originForm(target: string): string {
  const absolute = absoluteForm.exec(target);
  if (absolute === null) return target;
  const rest = target.slice(absolute[0].length);
  return rest.startsWith('/') ? rest : `/${rest}`;
}
