/** Where CLI commands write (stderr for progress; tests pass a collector). */
export interface Output {
  write(text: string): unknown;
  isTTY?: boolean;
}

const WIDTH = 30;

/**
 * A text progress bar counting `unit`s: redrawn in place on a terminal, a new line every 10%
 * elsewhere (logs, CI).
 */
export function textProgressBar(out: Output, unit: string): (done: number, total: number, note?: string) => void {
  let lastTenth = -1;
  return (done, total, note = '') => {
    const ratio = total === 0 ? 1 : done / total;
    const filled = Math.round(ratio * WIDTH);
    const line = `[${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}] ${String(Math.floor(ratio * 100)).padStart(3)}% ${done}/${total} ${unit}${note ? `  ${note}` : ''}`;
    if (out.isTTY) {
      out.write(`\r${line}\x1b[K${done === total ? '\n' : ''}`);
    } else if (Math.floor(ratio * 10) !== lastTenth) {
      lastTenth = Math.floor(ratio * 10);
      out.write(`${line}\n`);
    }
  };
}
