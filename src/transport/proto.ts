// Loads proto/*.proto at run time and hands out the gRPC service definitions. The files are found
// from this module's location by walking up to the package root (the directory holding
// proto/raft.proto), so the same code works from src/ under tsx and from a compiled dist/src/.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import type { MethodDefinition, ServiceDefinition } from '@grpc/proto-loader';

/** How every message is turned into a JavaScript object. `longs: Number` makes uint64 a number; the
 *  codecs then reject values above Number.MAX_SAFE_INTEGER. `defaults` fills absent scalars with
 *  their proto3 zero values (absent message fields become null), `oneofs` names the member set. */
export const protoLoaderOptions: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
  arrays: true,
};

function findPackageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'proto', 'raft.proto'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) {
      throw new Error(
        `cannot find proto/raft.proto in any parent of ${fileURLToPath(import.meta.url)}; ` +
          'the package must ship its proto/ folder next to package.json',
      );
    }
    dir = parent;
  }
}

export const protoDir = join(findPackageRoot(), 'proto');

/** A method definition whose request and response are plain objects (validated by the codecs). */
export type Method = MethodDefinition<object, unknown>;

export interface RaftPeerService {
  readonly definition: ServiceDefinition;
  readonly appendStream: Method;
  readonly heartbeatStream: Method;
  readonly vote: Method;
  readonly timeoutNow: Method;
  readonly installSnapshot: Method;
}

export interface ConclaveServerService {
  readonly definition: ServiceDefinition;
  readonly apply: Method;
  readonly read: Method;
  readonly operator: Method;
  readonly forward: Method;
  readonly snapshotSave: Method;
  readonly snapshotRestore: Method;
}

function method(service: ServiceDefinition, name: string): Method {
  const m = service[name];
  if (m === undefined) throw new Error(`proto service lacks method ${name}`);
  return m as Method;
}

function service(file: string, name: string): ServiceDefinition {
  const pkg = protoLoader.loadSync(join(protoDir, file), protoLoaderOptions);
  const s = pkg[name];
  if (s === undefined || 'format' in s || 'fileDescriptorProtos' in s) {
    throw new Error(`${file} does not define service ${name}`);
  }
  return s as ServiceDefinition;
}

let raftPeer: RaftPeerService | undefined;
let conclaveServer: ConclaveServerService | undefined;

export function raftPeerService(): RaftPeerService {
  if (raftPeer === undefined) {
    const definition = service('raft.proto', 'conclave.raft.v1.RaftPeer');
    raftPeer = {
      definition,
      appendStream: method(definition, 'AppendStream'),
      heartbeatStream: method(definition, 'HeartbeatStream'),
      vote: method(definition, 'Vote'),
      timeoutNow: method(definition, 'TimeoutNow'),
      installSnapshot: method(definition, 'InstallSnapshot'),
    };
  }
  return raftPeer;
}

export function conclaveServerService(): ConclaveServerService {
  if (conclaveServer === undefined) {
    const definition = service('server.proto', 'conclave.server.v1.ConclaveServer');
    conclaveServer = {
      definition,
      apply: method(definition, 'Apply'),
      read: method(definition, 'Read'),
      operator: method(definition, 'Operator'),
      forward: method(definition, 'Forward'),
      snapshotSave: method(definition, 'SnapshotSave'),
      snapshotRestore: method(definition, 'SnapshotRestore'),
    };
  }
  return conclaveServer;
}
