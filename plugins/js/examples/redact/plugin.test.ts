import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Verdict } from '@synaptic/plugin-sdk';
import * as testing from '@synaptic/plugin-sdk/testing';

import * as plugin from './plugin.ts';

test('masks the named fields and keeps events without them', () => {
  testing.reset();
  const verdicts = testing.run(plugin, { fields: ['data.agent_id', 'data.reasoning', 'tags.missing.deep'] }, [
    { event_id: 'a', data: { agent_id: 'agent-1', reasoning: 'mail bob@example.com', other: 1 } },
    { event_id: 'b', data: { task_id: 't-1' } },
    { event_id: 'c', data: { agent_id: null } },
  ]);
  assert.deepEqual(testing.replacedDocument(verdicts[0]), {
    event_id: 'a',
    data: { agent_id: '[REDACTED]', reasoning: '[REDACTED]', other: 1 },
  });
  assert.deepEqual(verdicts.slice(1), [Verdict.keep, Verdict.keep]);
  assert.equal(testing.counters().get('redacted'), 2n);
});

test('a custom mask, and whole objects', () => {
  const [verdict] = testing.run(plugin, { fields: ['data.resource_usage'], mask: '***' }, [
    { data: { resource_usage: { cpu_percent: 5 } } },
  ]);
  assert.deepEqual(testing.replacedDocument(verdict), { data: { resource_usage: '***' } });
});

test('config errors name the key', () => {
  assert.throws(() => plugin.init('{}'), /config\.fields/);
  assert.throws(() => plugin.init(JSON.stringify({ fields: ['data..x'] })), /empty part/);
  assert.throws(() => plugin.init(JSON.stringify({ fields: ['data.x'], mask: 1 })), /config\.mask/);
});
