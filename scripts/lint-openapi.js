#!/usr/bin/env node
/**
 * `npm run openapi:lint`: Redocly's linter over openapi.yaml with the rules of redocly.yaml (and
 * the exceptions of .redocly.lint-ignore.yaml). Fails on warnings as well as errors, which
 * `redocly lint` alone does not.
 */
const { spawnSync } = require('node:child_process');
const { resolve } = require('node:path');

const root = resolve(__dirname, '..');
const cli = require.resolve('@redocly/cli/bin/cli.js', { paths: [root] });
const run = spawnSync(process.execPath, [cli, 'lint', 'openapi.yaml', '--format=json', '--max-problems=1000'], {
  cwd: root,
  encoding: 'utf8',
  env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
});
let report;
try {
  report = JSON.parse(run.stdout);
} catch {
  process.stderr.write(`redocly lint did not report (exit ${run.status}):\n${run.stdout}${run.stderr}`);
  process.exit(1);
}
for (const problem of report.problems) {
  const at = problem.location?.[0]?.pointer ?? '';
  process.stdout.write(`${problem.severity.padEnd(7)} ${problem.ruleId}: ${problem.message}\n        at ${at}\n`);
}
const { errors, warnings, ignored } = report.totals;
process.stdout.write(`openapi.yaml: ${errors} errors, ${warnings} warnings (${ignored} ignored in .redocly.lint-ignore.yaml)\n`);
process.exit(errors + warnings === 0 ? 0 : 1);
