/** A seeded pseudo-random generator (sfc32): the same seed gives the same data set on every machine. */
export class Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 15; i++) this.next();
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.a >>>= 0;
    this.b >>>= 0;
    this.c >>>= 0;
    this.d >>>= 0;
    let t = (this.a + this.b) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.d = (this.d + 1) | 0;
    t = (t + this.d) | 0;
    this.c = (this.c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  /** Uniform integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }

  /** Log-normal with the given median and spread (sigma of the underlying normal). */
  logNormal(median: number, sigma: number): number {
    const u = 1 - this.next();
    const v = this.next();
    return median * Math.exp(sigma * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v));
  }
}

/** Zipf-like weights: item k (from 1) weighs 1 / k^s. */
export function zipfWeights(count: number, s: number): number[] {
  return Array.from({ length: count }, (_v, k) => 1 / Math.pow(k + 1, s));
}

/** Walker's alias method: O(1) draws from a fixed discrete distribution. */
export class WeightedSampler {
  private readonly probability: Float64Array;
  private readonly alias: Int32Array;

  constructor(weights: readonly number[]) {
    const n = weights.length;
    const total = weights.reduce((sum, w) => sum + w, 0);
    const scaled = weights.map((w) => (w * n) / total);
    this.probability = new Float64Array(n);
    this.alias = new Int32Array(n);
    const small: number[] = [];
    const large: number[] = [];
    scaled.forEach((p, i) => (p < 1 ? small : large).push(i));
    while (small.length > 0 && large.length > 0) {
      const s = small.pop()!;
      const l = large.pop()!;
      this.probability[s] = scaled[s];
      this.alias[s] = l;
      scaled[l] = scaled[l] + scaled[s] - 1;
      (scaled[l] < 1 ? small : large).push(l);
    }
    for (const i of [...small, ...large]) this.probability[i] = 1;
  }

  draw(random: Random): number {
    const column = Math.floor(random.next() * this.probability.length);
    return random.next() < this.probability[column] ? column : this.alias[column];
  }
}

/** Picks `count` distinct indexes, each draw weighted by `weights` among those not yet picked. */
export function pickDistinct(random: Random, weights: readonly number[], count: number): number[] {
  const left = weights.map((w, i) => ({ w, i }));
  const picked: number[] = [];
  while (picked.length < count && left.length > 0) {
    let r = random.next() * left.reduce((sum, e) => sum + e.w, 0);
    let at = 0;
    while (at < left.length - 1 && r >= left[at].w) r -= left[at++].w;
    picked.push(left[at].i);
    left.splice(at, 1);
  }
  return picked;
}
