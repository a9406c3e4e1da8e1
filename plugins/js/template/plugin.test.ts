import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Verdict } from '@synaptic/plugin-sdk';
import * as testing from '@synaptic/plugin-sdk/testing';

import * as plugin from './plugin.ts';

test('drops the configured event types', () => {
  testing.reset();
  const verdicts = testing.run(plugin, { drop_event_types: ['mesh.topology.change'] }, [
    { event_type: 'mesh.topology.change' },
    { event_type: 'task.completed' },
  ]);
  assert.deepEqual(verdicts, [Verdict.drop, Verdict.keep]);
  assert.equal(testing.counters().get('dropped_by_type'), 1n);
});
