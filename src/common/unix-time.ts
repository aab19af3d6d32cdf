/** API timestamps are Unix seconds (as in the seeds and OpenAI's objects). */
export function unixSeconds(date: Date): number {
  return Math.floor(date.getTime() / 1000);
}
