export { RaftCore, applyMembershipChange } from './core.js';
export { SeededRandom } from './random.js';
export { initialSnapshot } from './log.js';
export { bootstrapState, joinState } from './bootstrap.js';
export { plantedBugs } from './types.js';
export type * from './types.js';
