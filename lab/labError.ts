/** A lab could not be built, used or removed as asked (lab/topology.ts and the other topologies). */
export class LabError extends Error {
  override readonly name: string = 'LabError';
}
