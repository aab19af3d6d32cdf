// A require hook that compiles TypeScript with @swc/core, for child processes that tests spawn
// (the options of swc.config.js, as Jest uses; no build needed).
const fs = require('node:fs');
const swc = require('@swc/core');
const options = require('../../swc.config.js');

require.extensions['.ts'] = (module, filename) => {
  const { code } = swc.transformSync(fs.readFileSync(filename, 'utf8'), { filename, ...options });
  module._compile(code, filename);
};
