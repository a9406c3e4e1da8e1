// The contract's host imports (plugins/wit/plugin.wit, interface `host`), as
// componentize-js binds them.
declare module 'synaptic:plugin/host@1.0.0' {
  export function log(level: 'trace' | 'debug' | 'info' | 'warn' | 'error', message: string): void;
  export function count(name: string, delta: bigint): void;
}
