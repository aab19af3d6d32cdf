/** Slow fault-injection specs (`npm run test:chaos`): real worker processes killed with SIGKILL, Redis restarted. */
const base = require('./jest.config.js');

module.exports = { ...base, testMatch: ['<rootDir>/test/chaos/**/*.chaos-spec.ts'], testTimeout: 180000, maxWorkers: 1 };
