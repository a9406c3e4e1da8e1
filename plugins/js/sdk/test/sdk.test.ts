import assert from 'node:assert/strict';
import { test } from 'node:test';

import { definePlugin, Event, parseSeverity, Severity, Verdict } from '@synaptic/plugin-sdk';
import * as testing from '@synaptic/plugin-sdk/testing';

import { decode, encode, events } from '../src/contract.ts';

const encoder = new TextEncoder();

test('event helpers read fields by path', () => {
  const event = new Event(
    encoder.encode(
      '{"event_id":"e-1","timestamp":1767225600000,"component":"mesh","event_type":"agent.lifecycle","severity":"WARN","data":{"agent_id":"a-7","n":3,"deep":{"x":[1]}}}',
    ),
  );
  assert.equal(event.eventType, 'agent.lifecycle');
  assert.equal(event.component, 'mesh');
  assert.equal(event.eventId, 'e-1');
  assert.equal(event.severity, Severity.WARN);
  assert.equal(event.timestampMs, 1767225600000);
  assert.equal(event.text('data.agent_id'), 'a-7');
  assert.equal(event.text('data.n'), '3');
  assert.deepEqual(event.field('data.deep'), { x: [1] });
  assert.equal(event.field('data.missing'), undefined);
  assert.equal(event.field('data.agent_id.below'), undefined);
  assert.equal(event.field('data.constructor'), undefined, 'only own keys are fields');
  assert.ok(Severity.ERROR > Severity.WARN);
  assert.equal(parseSeverity('warn'), undefined, 'severities are upper case in schema v1.0');
});

test('verdicts survive the wire encoding, multibyte text included', () => {
  const doc = { event_id: 'ü-😀', data: { lone: '\ud800' } };
  const verdicts = [Verdict.keep, Verdict.replace(doc), Verdict.drop, Verdict.replace({ a: 1 })];
  const wire = encode(verdicts, 4);
  assert.deepEqual([...wire.codes], [0, 2, 1, 2]);
  assert.equal(wire.replacementEnds.length, 2);
  const back = decode(wire);
  assert.deepEqual(testing.replacedDocument(back[1]), doc);
  assert.deepEqual(testing.replacedDocument(back[3]), { a: 1 });
  assert.equal(back[2].kind, 'drop');
});

test('contract errors are clear', () => {
  assert.throws(() => encode([Verdict.keep], 2), /1 verdicts for 2 events/);
  assert.throws(() => encode([undefined as unknown as Verdict], 1), /verdict 0 is not/);
  assert.throws(() => events({ data: new Uint8Array(2), offsets: [0, 5] }), /outside the data/);
  assert.throws(() => events({ data: new Uint8Array(0), offsets: [] }), /offsets are empty/);
});

test('errors reach the host as one-line strings', () => {
  const plugin = definePlugin(() => ({
    process: () => {
      throw new RangeError('no');
    },
  }));
  assert.throws(() => plugin.process(testing.batch([{}])), (e) => e === 'Error: process was called before init');
  plugin.init('');
  assert.throws(() => plugin.process(testing.batch([{}])), (e) => e === 'RangeError: no');
  const broken = definePlugin(() => {
    throw new Error('config.x: bad');
  });
  assert.throws(() => broken.init('{}'), (e) => e === 'Error: config.x: bad');
  assert.throws(() => broken.init('[1]'), (e) => e === 'Error: plugin config must be a map');
});

test('host imports are recorded in tests', async () => {
  testing.reset();
  const { log, count } = await import('@synaptic/plugin-sdk');
  log('info', 'hello');
  count('seen', 2);
  count('seen', 3);
  assert.deepEqual(testing.logs(), [{ level: 'info', message: 'hello' }]);
  assert.equal(testing.counters().get('seen'), 5n);
  assert.throws(() => count('seen', -1), /whole number/);
});
