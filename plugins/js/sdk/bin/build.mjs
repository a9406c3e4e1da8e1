#!/usr/bin/env node
// synaptic-plugin-build ENTRY OUT.wasm
//
// Builds a plugin written in TypeScript or JavaScript into a WebAssembly component
// of the contract in plugins/wit/plugin.wit:
//   1. esbuild bundles ENTRY and what it imports (this SDK included) into one ES
//      module, stripping TypeScript types; the host import stays an import.
//   2. componentize-js embeds that module in the StarlingMonkey JavaScript engine
//      and pre-initialises it with Wizer: the engine starts and the module's top
//      level runs at build time, and the component starts from that snapshot.
// No WASI interface is imported: the plugin reaches nothing but its batch and the
// host's log and counters.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { componentize } from '@bytecodealliance/componentize-js';
import { build } from 'esbuild';

const [entry, out] = process.argv.slice(2);
if (!entry || !out) {
  console.error('usage: synaptic-plugin-build ENTRY.ts|ENTRY.js OUT.wasm');
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const witPath = process.env.SYNAPTIC_PLUGIN_WIT ?? resolve(here, '../../../wit');

const started = Date.now();
const work = await mkdtemp(join(tmpdir(), 'synaptic-plugin-'));
try {
  const bundle = join(work, 'plugin.js');
  await build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    external: ['synaptic:plugin/*'],
    outfile: bundle,
    logLevel: 'warning',
    // Fields assigned in the constructor, not defined one by one: cheaper per object
    // in an interpreter, and objects are made per event.
    tsconfigRaw: { compilerOptions: { useDefineForClassFields: false } },
  });
  const { component } = await componentize({
    sourcePath: bundle,
    witPath,
    worldName: 'plugin',
    // Nothing but the contract: no stdio, clocks, randomness or network imports.
    disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
  });
  await writeFile(out, component);
  console.error(`built ${out}: ${component.length} bytes in ${Date.now() - started} ms`);
} catch (error) {
  console.error(`building ${entry} failed: ${error?.stack ?? error}`);
  process.exitCode = 1;
} finally {
  await rm(work, { recursive: true, force: true });
}
