// The one place the CLI touches the server: `startAgent` from src/agent. It is kept in this
// file, loaded with a dynamic import only after the configuration is valid, so that help, version and
// configuration errors work without loading (or even having) the server, and the rest of src/cli is
// tested with a fake.

import type { StartAgent } from './agent.js';
import { startAgent as serverStartAgent } from '../agent/index.js';

/** The server's startAgent, checked against the shape the command relies on. */
export const startAgent: StartAgent = serverStartAgent;
