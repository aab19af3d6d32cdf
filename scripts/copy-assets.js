// Copies files tsc does not emit (the reservations' Lua scripts) next to the compiled code.
const { cpSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
cpSync(join(root, 'src/reservations/lua'), join(root, 'dist/src/reservations/lua'), { recursive: true });
