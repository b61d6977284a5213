// Defects planted on purpose, for the chaos suite to prove it catches them (test/chaos, issue 11's
// teeth). CONCLAVE_TEST_PLANTED_BUG holds a comma-separated list; read once, at load. Never set
// outside tests. The defects:
//   stale-default-read  a follower serves default reads from its own state instead of the leader's
//                       (src/server);
//   half-restore        a state.bin loses its `zz-marker` keys on the way into the FSM database, as a
//                       restore that silently drops part of the state would (src/fsm/restore.ts).
export type PlantedBug = 'stale-default-read' | 'half-restore';

const planted: ReadonlySet<string> = new Set((process.env['CONCLAVE_TEST_PLANTED_BUG'] ?? '').split(',').filter((s) => s !== ''));

export function isPlanted(bug: PlantedBug): boolean {
  return planted.has(bug);
}
