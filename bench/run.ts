import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { availableParallelism, cpus, release, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from 'pg';
import { ROLLUPS } from '../src/usage/rollups';
import { DAY } from '../src/usage/time-buckets';
import { loadUsage, LoadTimings } from './data/load';
import { createTenancy } from './data/tenants';
import { Traffic } from './data/traffic';
import { HttpClient } from './harness/http';
import { fmt, RunInfo, Section, writeJson, writeReport } from './harness/report';
import { createScratchDatabase, deleteRedisPrefix, redisVersion, serverVersion } from './harness/scratch';
import { ServiceOptions, ServiceProcess } from './harness/service';
import { BenchOptions, parseOptions } from './options';
import { alertLatencySection, measureAlertLatency, startWorker } from './parts/alert-latency';
import { budgetCheckSection, createBudgets, measureBudgetCheck } from './parts/budget-check';
import { ingestSection, measureIngest } from './parts/ingest';
import { memorySection } from './parts/memory';
import { measureReservations, reservationsSection } from './parts/reservations';
import { measureUsageQueries, QueryMeasurement, usageQuerySection } from './parts/usage-query';

const ROOT = resolve(__dirname, '..', '..');
const DIST = resolve(__dirname, '..');
/** Days of stored traffic: 89 whole days and today up to now. */
const DAYS = 90;

const log = (line: string) => process.stderr.write(`${line}\n`);

/**
 * `npm run bench`: builds a scratch database, starts the real service against it as a child
 * process, loads realistic usage, measures each part against its same-run baseline, writes
 * BENCHMARKS.md and bench/.results/*.json, and removes everything it made.
 */
async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2), process.env);
  const started = Date.now();
  const db = await createScratchDatabase(options.serverUrl);
  const redisPrefix = `bench-${randomBytes(4).toString('hex')}`;
  log(`Scratch database ${db.name}, Redis prefix ${redisPrefix}`);
  const adminKey = `mk-${randomBytes(32).toString('hex')}`;
  let service: ServiceProcess | undefined;
  let serviceOptions: ServiceOptions;
  try {
    serviceOptions = { databaseUrl: db.url, redisUrl: options.redisUrl, redisPrefix, port: options.port, adminKey, secretsKey: randomBytes(32).toString('hex') };
    service = await ServiceProcess.start(serviceOptions, DIST);
    log(`Service pid ${service.pid} at ${service.baseUrl}`);
    const sections = await runParts(options, service, db.url, adminKey, serviceOptions);
    const info = await runInfo(options, started);
    const json = writeJson(join(ROOT, 'bench', '.results'), info, sections);
    log(`\nRaw figures: ${json}`);
    if (options.report) {
      writeReport(join(ROOT, 'BENCHMARKS.md'), info, sections);
      log('BENCHMARKS.md rewritten');
    }
    printGoals(sections);
  } catch (err) {
    if (service) log(`Last output of the service:\n${service.tail()}`);
    throw err;
  } finally {
    await service?.stop();
    await deleteRedisPrefix(options.redisUrl, redisPrefix).catch((err) => log(`could not clean Redis: ${err}`));
    if (options.keep) log(`Kept ${db.url}`);
    else await db.drop();
  }
}

async function runParts(options: BenchOptions, service: ServiceProcess, databaseUrl: string, adminKey: string, serviceOptions: ServiceOptions): Promise<Section[]> {
  const admin = new HttpClient(service.baseUrl, adminKey, 8);
  const pg = new Client({ connectionString: databaseUrl });
  await pg.connect();
  try {
    const now = Math.floor(Date.now() / 60_000) * 60;
    const today = Math.floor(now / DAY) * DAY;
    const from = today - (DAYS - 1) * DAY;
    service.enter('set-up');
    const tenancy = await createTenancy(admin, from - DAY);
    const traffic = () => new Traffic(tenancy.tenants, options.seed);
    const largest = tenancy.tenants[0];
    const reader = new HttpClient(service.baseUrl, tenancy.orgAdmins[0].key);
    const plans = options.quick
      ? { fast: { warmup: 2, minRuns: 5, maxRuns: 100, seconds: 1 }, naive: { warmup: 1, minRuns: 3, maxRuns: 20, seconds: 1 } }
      : { fast: { warmup: 3, minRuns: 10, maxRuns: 300, seconds: 4 }, naive: { warmup: 1, minRuns: 3, maxRuns: 30, seconds: 5 } };

    const loads: LoadTimings[] = [];
    const queries: QueryMeasurement[] = [];
    const has = (part: number) => options.parts.has(part);
    // Part 1 reads both data sets; part 2 ingests into the large one; part 3's blocked keys are
    // over their daily limit by the large one's spend; the others need no records.
    const sizes = has(1) ? [options.smallRecords, options.records] : has(2) || has(3) ? [options.records] : [];
    for (const records of sizes) {
      log(`\nLoading ${fmt.count(records)} records over ${DAYS} days`);
      service.enter(`loading ${fmt.count(records)} records`);
      loads.push(await loadUsage(databaseUrl, traffic(), records, from, now, log));
      if (!has(1)) continue;
      log(`1. Usage query at ${fmt.count(records)} records`);
      service.enter(`1. usage query, ${fmt.count(records)} records`);
      queries.push(
        ...(await measureUsageQueries({
          http: reader,
          pg,
          orgId: largest.orgId,
          orgAdminKeyId: tenancy.orgAdmins[0].id,
          end: today,
          records,
          plans,
          // At the largest size, the daily query again with the last hour pending in the rollup journal.
          pendingTailSeconds: records === options.records ? 3600 : undefined,
          log,
        })),
      );
    }
    reader.close();

    const sections: Section[] = [];
    if (loads.length > 0) sections.push(dataSection(loads, 0, 0));
    if (has(1)) sections.push(usageQuerySection(queries));
    const budgets = has(2) || has(3) ? await storeBudgets(options, service, admin, pg, tenancy) : undefined;
    if (budgets && loads.length > 0) sections[0] = dataSection(loads, budgets.seconds, budgets.budgets);
    if (has(2)) sections.push(ingestSection(await runIngest(options, service, serviceOptions, databaseUrl, tenancy, traffic)));
    if (has(3)) sections.push(budgetCheckSection(await runCheck(options, service, tenancy, budgets!)));
    if (has(4)) {
      log('4. Alert latency');
      service.enter('4. alert latency');
      sections.push(
        alertLatencySection(
          await measureAlertLatency({
            admin,
            baseUrl: service.baseUrl,
            ingestKey: tenancy.ingest.key,
            orgId: largest.orgId,
            service: serviceOptions,
            distDir: DIST,
            crossings: options.quick ? 20 : 200,
            log,
          }),
        ),
      );
    }
    if (has(6)) sections.push(reservationsSection(await runReservations(options, service, admin, pg, tenancy)));
    service.enter('done');
    if (has(5)) sections.push(memorySection(service.peaks, (phase) => /^[123]\./.test(phase), service.peakMb()));
    return sections;
  } finally {
    admin.close();
    await pg.end();
  }
}

type Tenancy = Awaited<ReturnType<typeof createTenancy>>;

async function storeBudgets(options: BenchOptions, service: ServiceProcess, admin: HttpClient, pg: Client, tenancy: Tenancy) {
  log(`\nStoring ${fmt.count(options.budgets)} budgets`);
  // Its own phase: not part 1's peak (the memory goal covers parts 1–3 only).
  service.enter('storing budgets');
  return createBudgets(admin, pg, tenancy, options.budgets, log);
}

async function runIngest(
  options: BenchOptions,
  service: ServiceProcess,
  serviceOptions: ServiceOptions,
  databaseUrl: string,
  tenancy: Tenancy,
  traffic: () => Traffic,
): Promise<Parameters<typeof ingestSection>[0]> {
    log('2. Ingest');
    service.enter('2. ingest');
    // A second API process beside the first, and a worker folding the rollup journal, for this part only.
    const second = await ServiceProcess.start({ ...serviceOptions, port: options.port + 1 }, DIST);
    const worker = await startWorker(serviceOptions, DIST);
    try {
      return await measureIngest({
        baseUrls: [service.baseUrl, second.baseUrl],
        ingestKey: tenancy.ingest.key,
        databaseUrl,
        traffic: traffic(),
        records: options.ingestRecords,
        clients: options.ingestClients,
        tableRecords: options.records,
        log,
      });
    } finally {
      worker.kill('SIGTERM');
      await second.stop();
    }
}

async function runCheck(options: BenchOptions, service: ServiceProcess, tenancy: Tenancy, budgets: Awaited<ReturnType<typeof createBudgets>>) {
  log('3. Budget check');
  service.enter('3. budget check');
  const check = await measureBudgetCheck({
    baseUrl: service.baseUrl,
    ingestKey: tenancy.ingest.key,
    setup: budgets,
    blockedKey: tenancy.tenants[0].keys[0].id,
    servicePid: service.pid,
    connections: options.checkConnections,
    seconds: options.checkSeconds,
    warmupSeconds: options.quick ? 1 : 2,
  });
  log(`  check ${fmt.count(check.check.requestsPerSecond)} req/s p99 ${fmt.ms(check.check.latency.p99)} ms; /health/live ${fmt.count(check.live.requestsPerSecond)} req/s`);
  return check;
}

async function runReservations(options: BenchOptions, service: ServiceProcess, admin: HttpClient, pg: Client, tenancy: Tenancy) {
  log('6. Reservations');
  service.enter('6. reservations');
  const reservations = await measureReservations({
    baseUrl: service.baseUrl,
    admin,
    pg,
    ingestKey: tenancy.ingest.key,
    servicePid: service.pid,
    connections: options.checkConnections,
    seconds: options.checkSeconds,
    warmupSeconds: options.quick ? 1 : 2,
    log,
  });
  log(
    `  hot ${fmt.count(reservations.hot.load.requestsPerSecond)} req/s p99 ${fmt.ms(reservations.hot.load.latency.p99)} ms overshoot ${reservations.hot.overshoot}; ` +
      `spread ${fmt.count(reservations.spread.load.requestsPerSecond)} req/s p99 ${fmt.ms(reservations.spread.load.latency.p99)} ms overshoot ${reservations.spread.overshoot}; ` +
      `/health/live ${fmt.count(reservations.live.requestsPerSecond)} req/s`,
  );
  return reservations;
}

function dataSection(loads: LoadTimings[], budgetSeconds: number, budgets: number): Section {
  return {
    id: 'data',
    title: 'Data set',
    method:
      `${DAYS} days of traffic ending now: 5 orgs, ≈50 keys, 20 models (Zipf-like popularity), 1,000 end users each in one org with one main key and 1–3 models, ` +
      'daily cycle, seeded. Loaded by COPY with the indexes dropped, rollups built by the service\'s rebuild SQL (one range per org, two orgs at a time), indexes recreated, VACUUM ANALYZE. ' +
      `${fmt.count(budgets)} budgets stored in ${budgetSeconds.toFixed(1)} s (those of the orgs and application keys through the API, the rest straight into the table).`,
    tables: [
      {
        header: ['records', 'COPY', 'rollups', 'indexes', 'vacuum', ...ROLLUPS.map((r) => `${r.table} rows`)],
        rows: loads.map((l) => [
          fmt.count(l.records),
          `${l.copySeconds.toFixed(1)} s`,
          `${l.rollupSeconds.toFixed(1)} s`,
          `${l.indexSeconds.toFixed(1)} s`,
          `${l.vacuumSeconds.toFixed(1)} s`,
          ...ROLLUPS.map((r) => fmt.count(l.rollupRows[r.table])),
        ]),
      },
    ],
    goals: [],
    data: loads,
  };
}

async function runInfo(options: BenchOptions, started: number): Promise<RunInfo> {
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const changed = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', 'src', 'bench', 'migrations'], { cwd: ROOT, encoding: 'utf8' });
    if (changed.trim() !== '') commit += ' with local changes';
  } catch {
    // not a git checkout
  }
  return {
    date: new Date().toISOString(),
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    commit,
    seconds: (Date.now() - started) / 1000,
    machine: {
      CPU: `${cpus()[0]?.model ?? 'unknown'} (nproc ${availableParallelism()})`,
      memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
      kernel: release(),
      Node: process.version,
      PostgreSQL: await serverVersion(options.serverUrl),
      Redis: await redisVersion(options.redisUrl),
    },
    settings: {
      'large data set': options.records,
      'small data set': options.smallRecords,
      'ingest records': options.ingestRecords,
      'ingest clients': options.ingestClients,
      budgets: options.budgets,
      'check connections': options.checkConnections,
      'check seconds': options.checkSeconds,
      seed: options.seed,
    },
  };
}

function printGoals(sections: Section[]): void {
  log('\nGoals:');
  for (const s of sections) for (const g of s.goals) log(`  ${g.pass ? 'pass  ' : 'MISSED'} ${s.title}: ${g.goal}: ${g.measured}`);
}

main().catch((err: unknown) => {
  log(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
