/**
 * The generated SDK (test/.generated/sdk) names the DOM's `BodyInit`, which @types/node does not
 * declare globally; Node's fetch takes undici's. (The project compiles without the DOM library.)
 */
type BodyInit = import('undici-types').BodyInit;
