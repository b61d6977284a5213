export { RaftCore, applyMembershipChange } from './core.js';
// test/sim imports InvariantError from here; the class itself is the one of src/base.
export { InvariantError } from '../base/index.js';
export { SeededRandom } from './random.js';
export { initialSnapshot } from './log.js';
export { bootstrapState, joinState } from './bootstrap.js';
export { plantedBugs } from './types.js';
export type * from './types.js';
