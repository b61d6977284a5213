// The base every layer may import: what every folder needs and no folder owns. It imports nothing
// from src/. Keep it small; a helper belongs here only once two layers need the very same thing.

export { InvariantError, assert, unreachable } from './invariant.js';
export { KiB, MiB, GiB } from './units.js';
export { exists, fsyncDir } from './files.js';
export { sleep } from './sleep.js';
export { conclaveVersion } from './version.js';
export { utf8, utf8DecodeStrict, isWellFormedText, compareBytes, concatBytes, bytesEqual } from './bytes.js';
export { Feed } from './feed.js';
export { writeOps, type LevelOp } from './level-batch.js';
export { childWith, unbound } from './logging.js';
export { parseGoDuration, goDurationString, type DurationParse } from './duration.js';
export { isPlanted, type PlantedBug } from './planted.js';
