import { fmt, Section } from '../harness/report';

/** Part 5 of the report: the API process's peak resident memory per phase (sampled every 50 ms) and its high-water mark. */
export function memorySection(peaks: Map<string, number>, measured: (phase: string) => boolean, highWaterMb: number | null): Section {
  const during = [...peaks].filter(([phase]) => measured(phase));
  const peak = Math.max(...during.map(([, mb]) => mb));
  return {
    id: 'memory',
    title: '5. Memory',
    method:
      'Resident set size of the API process (`node dist/src/main.js`, PROCESS_ROLE=api, default Node heap settings), read from /proc/<pid>/status every 50 ms; ' +
      'the high-water mark (VmHWM) covers the whole run, set-up included.',
    tables: [
      {
        header: ['phase', 'peak RSS'],
        rows: [...[...peaks].map(([phase, mb]) => [phase, fmt.mb(mb)]), ['whole run (VmHWM)', highWaterMb === null ? 'n/a' : fmt.mb(highWaterMb)]],
      },
    ],
    goals: [{ goal: 'peak RSS during parts 1–3 < 300 MB', measured: fmt.mb(peak), pass: peak < 300 }],
    data: { peaks: Object.fromEntries(peaks), highWaterMb },
  };
}
