import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Verdict } from '@synaptic/plugin-sdk';
import * as testing from '@synaptic/plugin-sdk/testing';

import * as plugin from './plugin.ts';

test('drops below the floor and counts', () => {
  testing.reset();
  const verdicts = testing.run(plugin, { min: 'WARN' }, [
    { severity: 'DEBUG' },
    { severity: 'WARN' },
    { severity: 'ERROR' },
    { severity: 'LOUD' },
  ]);
  assert.deepEqual(verdicts, [Verdict.drop, Verdict.keep, Verdict.keep, Verdict.keep]);
  assert.equal(testing.counters().get('below_floor'), 1n);
});

test('the default floor is INFO', () => {
  const verdicts = testing.run(plugin, {}, [{ severity: 'DEBUG' }, { severity: 'INFO' }]);
  assert.deepEqual(verdicts, [Verdict.drop, Verdict.keep]);
});

test('a bad floor is a clear init error', () => {
  assert.throws(() => plugin.init(JSON.stringify({ min: 'LOUD' })), /config\.min.*LOUD/);
  assert.throws(() => plugin.init(JSON.stringify({ min: 3 })), /config\.min: expected a string/);
});
