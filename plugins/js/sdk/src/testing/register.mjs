// `node --import @synaptic/plugin-sdk/testing/register`: lets a plugin's tests run
// in Node without the host, by resolving the contract's host import
// (`synaptic:plugin/host@1.0.0`) to a recorder.
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url);
