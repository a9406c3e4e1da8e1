// Reading a plugin's config with errors that name the key, like the Rust SDK's.

import type { Config } from './index.ts';

/** `config[key]` as a string, or undefined when absent. Throws naming the key otherwise. */
export function configString(config: Config, key: string): string | undefined {
  const value = config[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new Error(`config.${key}: expected a string, got ${JSON.stringify(value)}`);
  return value;
}

/** `config[key]` as a list of strings, or undefined when absent. Throws naming the key otherwise. */
export function configStrings(config: Config, key: string): string[] | undefined {
  const value = config[key];
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
    throw new Error(`config.${key}: expected a list of strings, got ${JSON.stringify(value)}`);
  }
  return value as string[];
}
