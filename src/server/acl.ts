// ACLs as far as Conclave has them today: one management token from the configuration
// (acl.tokens.initial_management). With ACLs enabled, what Consul guards with `acl:write` (both
// snapshot directions: an archive holds every secret) needs that token; the full token and policy
// system comes later. Tokens are compared in constant time and never logged.

import { createHash, timingSafeEqual } from 'node:crypto';
import { ServerError } from './api.js';

export interface AclSettings {
  readonly enabled: boolean;
  /** acl.tokens.initial_management; absent: no token is management. */
  readonly managementToken?: string | undefined;
}

/** Consul's text for a request without a token (the anonymous token) that needs acl:write. */
export const anonymousDenied =
  "Permission denied: anonymous token lacks permission 'acl:write'. The anonymous token is used implicitly when a request does not specify a token.";

export class Acl {
  private readonly digest: Buffer | undefined;

  constructor(private readonly settings: AclSettings = { enabled: false }) {
    this.digest = settings.managementToken !== undefined ? sha256(settings.managementToken) : undefined;
  }

  get enabled(): boolean {
    return this.settings.enabled;
  }

  /** Throws Consul's 403s unless ACLs are off or `token` is the management token. */
  requireManagement(token: string | undefined): void {
    if (!this.settings.enabled) return;
    if (token === undefined || token === '' || token === 'anonymous') throw new ServerError('permission-denied', anonymousDenied);
    if (this.digest === undefined || !timingSafeEqual(sha256(token), this.digest)) throw new ServerError('acl-not-found', 'ACL not found');
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
