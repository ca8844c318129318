export interface DemoOptions { mib: number; conns: number; offloads: boolean }
export async function runDemo(_options: DemoOptions): Promise<void> {
  throw new Error("demo not written yet");
}
