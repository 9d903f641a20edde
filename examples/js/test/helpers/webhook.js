// Drives the webhook example: redeliveries, a burst of concurrent deliveries, a reused event id.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { createWebhookReceiver } from '../../examples/webhook.js';

export async function deliverTwiceAndConcurrently(guard) {
  const effects = [];
  const server = createWebhookReceiver({
    guard,
    handle: async (event, { fencingToken }) => {
      effects.push(event.id);
      await sleep(40);
      return { shipment: `sh_${event.data.order}`, fencingToken };
    },
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}/webhooks`;
  const post = async (event) => {
    const res = await fetch(url, { method: 'POST', body: JSON.stringify(event), signal: AbortSignal.timeout(5000) });
    return { status: res.status, body: await res.json() };
  };
  try {
    const id = `evt_${randomUUID()}`;
    const event = { id, type: 'order.paid', data: { order: 'A-1' } };
    const first = await post({ ...event, sent_at: 1 });
    const second = await post({ ...event, sent_at: 2 });
    assert.deepEqual(first, { status: 200, body: { result: { shipment: 'sh_A-1', fencingToken: 1 }, replayed: false } });
    assert.deepEqual(second, { status: 200, body: { ...first.body, replayed: true } });
    assert.equal((await post({ ...event, data: { order: 'B-2' } })).status, 422);

    const burst = { id: `evt_${randomUUID()}`, type: 'order.paid', data: { order: 'C-3' } };
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => post({ ...burst, sent_at: i })));
    for (const a of answers) assert.ok([200, 409].includes(a.status), JSON.stringify(a));
    assert.deepEqual(effects, [id, burst.id], 'each event must be handled exactly once');
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}
