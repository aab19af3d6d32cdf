export interface BenchOptions {
  /** The PostgreSQL server the scratch database is created on. */
  serverUrl: string;
  redisUrl: string;
  /** Records of the large and the small data set (part 1 runs at both; 2 and 3 at the large one). */
  records: number;
  smallRecords: number;
  ingestRecords: number;
  ingestClients: number;
  budgets: number;
  checkConnections: number;
  checkSeconds: number;
  quick: boolean;
  /** Rewrite BENCHMARKS.md (default: full runs only). */
  report: boolean;
  /** Keep the scratch database afterwards (its URL is printed). */
  keep: boolean;
  port: number;
  seed: number;
  /** The parts to run (1–6); all by default. */
  parts: Set<number>;
}

const USAGE = `Usage: npm run bench -- [options]
  --quick                  smoke run: small volumes, short runs (< 1 minute); does not touch BENCHMARKS.md
  --records N              records of the large data set (default 10000000; quick 200000)
  --small-records N        records of the small data set (default 1000000; quick 20000)
  --ingest-records N       records posted in part 2 (default 200000; quick 20000)
  --ingest-clients N       concurrent ingest clients (default 4)
  --budgets N              budgets stored for part 3 (default 10000; quick 1000)
  --check-connections N    autocannon connections in part 3 (default 8)
  --check-seconds N        seconds per autocannon run in part 3 (default 10; quick 3)
  --report / --no-report   rewrite BENCHMARKS.md (default: yes for full runs, no for --quick)
  --keep                   keep the scratch database
  --port N                 port of the service under test (default 3917)
  --seed N                 seed of the data generator (default 20251121)
  --parts LIST             run only these parts, e.g. --parts 2,6 (loads only what they need; does not touch BENCHMARKS.md)
Environment: DATABASE_URL (a PostgreSQL server; default postgres://postgres@127.0.0.1:5432/postgres), REDIS_URL.`;

export function parseOptions(argv: string[], env: Record<string, string | undefined>): BenchOptions {
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    if (!arg.startsWith('--')) throw new Error(`unexpected argument "${arg}"\n${USAGE}`);
    const [name, inline] = arg.slice(2).split('=', 2);
    const takesValue = !['quick', 'report', 'no-report', 'keep'].includes(name);
    flags.set(name, takesValue ? (inline ?? argv[++i] ?? '') : true);
  }
  const known = ['quick', 'records', 'small-records', 'ingest-records', 'ingest-clients', 'budgets', 'check-connections', 'check-seconds', 'report', 'no-report', 'keep', 'port', 'seed', 'parts'];
  for (const name of flags.keys()) if (!known.includes(name)) throw new Error(`unknown option --${name}\n${USAGE}`);
  const quick = flags.has('quick');
  const int = (name: string, full: number, smoke = full) => {
    const raw = flags.get(name);
    if (raw === undefined) return quick ? smoke : full;
    const value = Number(String(raw).replace(/_/g, ''));
    if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`--${name} takes a positive integer (got "${raw}")`);
    return value;
  };
  const options: BenchOptions = {
    serverUrl: env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    redisUrl: env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    records: int('records', 10_000_000, 200_000),
    smallRecords: int('small-records', 1_000_000, 20_000),
    ingestRecords: int('ingest-records', 200_000, 20_000),
    ingestClients: int('ingest-clients', 4),
    budgets: int('budgets', 10_000, 1_000),
    checkConnections: int('check-connections', 8),
    checkSeconds: int('check-seconds', 10, 3),
    quick,
    report: flags.has('no-report') ? false : flags.has('report') || !quick,
    keep: flags.has('keep'),
    port: int('port', 3917),
    seed: int('seed', 20251121),
    parts: parseParts(flags.get('parts')),
  };
  if (flags.has('parts') && !flags.has('report')) options.report = false;
  if (options.smallRecords >= options.records) throw new Error('--small-records must be below --records');
  return options;
}

const ALL_PARTS = [1, 2, 3, 4, 5, 6];

function parseParts(raw: string | true | undefined): Set<number> {
  if (raw === undefined) return new Set(ALL_PARTS);
  const parts = String(raw).split(',').map((p) => Number(p.trim()));
  if (parts.length === 0 || parts.some((p) => !ALL_PARTS.includes(p))) throw new Error(`--parts takes a comma-separated list of 1–6 (got "${raw}")\n${USAGE}`);
  return new Set(parts);
}
