/** Resolves after `ms` milliseconds. The timer keeps the process alive while it runs. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
