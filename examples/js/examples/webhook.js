// A webhook receiver that performs its side effect once per event, however often the sender
// redelivers. Run it: `node examples/webhook.js` (in-memory store) or, with Redis,
// `REDIS_URL=redis://127.0.0.1:6379 ./node_modules/.bin/node examples/webhook.js` (needs JSPI).
// It listens on 127.0.0.1, delivers the same event twice to itself, prints both answers and exits.
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import {
  Guard, Fingerprint, InProgressError, MismatchError, MemoryStore, StoreError,
} from '../src/index.js';

/**
 * Returns an http.Server that accepts `POST /webhooks` with a JSON event `{ id, type, data, sent_at }`
 * and calls `handle(event, { fencingToken })` once per event id.
 */
export function createWebhookReceiver({ guard, handle }) {
  return createServer(async (req, res) => {
    if (req.method !== 'POST' || req.url !== '/webhooks') return reply(res, 404, { error: 'not found' });
    let event, raw;
    try {
      raw = await readBody(req);
      event = JSON.parse(raw);
    } catch {
      return reply(res, 400, { error: 'invalid JSON' });
    }
    if (typeof event.id !== 'string') return reply(res, 400, { error: 'event id missing' });
    // The event id is the idempotency key; the sender stamps each delivery anew, so sent_at is not
    // part of the event's identity.
    const op = { scope: 'webhooks', key: `acme/${event.id}` };
    const payload = Fingerprint.json(raw, { exclude: ['/sent_at'] });
    try {
      const { value, replayed } = await guard.run(op, payload, (ctx) => handle(event, ctx));
      reply(res, 200, { result: value, replayed });
    } catch (err) {
      if (err instanceof InProgressError) {
        res.setHeader('retry-after', Math.ceil(err.retryAfterMs / 1000));
        return reply(res, 409, { error: 'delivery in progress' });
      }
      if (err instanceof MismatchError) return reply(res, 422, { error: 'event id reused with other content' });
      if (err instanceof StoreError) return reply(res, 503, { error: 'try again later' });
      reply(res, 500, { error: 'handler failed' });
    }
  });
}

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 1 << 20) throw new Error('body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function reply(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function main() {
  let store;
  if (process.env.REDIS_URL) {
    const { RedisStore } = await import('../src/store/redis.js');
    store = await RedisStore.connect(process.env.REDIS_URL);
  } else {
    store = new MemoryStore();
  }
  const guard = await Guard.create({ store });
  let shipments = 0;
  const server = createWebhookReceiver({
    guard,
    handle: async (event, { fencingToken }) => {
      shipments++; // the side effect: here it would call the warehouse, passing fencingToken along
      return { shipment: `sh_${event.data.order}`, fencingToken };
    },
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}/webhooks`;
  const event = { id: 'evt_1', type: 'order.paid', data: { order: 'A-1001' } };
  for (const sentAt of ['2025-01-01T00:00:00Z', '2025-01-01T00:05:00Z']) {
    const res = await fetch(url, { method: 'POST', body: JSON.stringify({ ...event, sent_at: sentAt }), signal: AbortSignal.timeout(5000) });
    console.log(`delivery sent at ${sentAt}: ${res.status} ${await res.text()}`);
  }
  console.log(`side effects performed: ${shipments}`);
  server.close();
  await store.close?.();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
