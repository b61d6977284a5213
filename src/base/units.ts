// Units of size, defined once. Limits tables multiply by these and end each name with its unit
// (`maxChunkBytes: 1 * MiB`).

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
