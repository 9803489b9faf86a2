// worker.js - one process of the peers' lease benchmark (forked by
// bench_peers.js): W workers cycling ask -> hold H ms -> release on one
// semaphore of limit L, through a peer library's documented API.
//
// As in bench_worker.c, every worker is an independent node: its own Redis
// connection(s) and its own lock object, so hand-offs go between nodes:
//  - redis-semaphore: one ioredis client and one `Semaphore(client, key,
//    limit, options)` per worker; a cycle is `await acquire()`, the hold,
//    `await release()`. acquire() polls (its retryInterval, default 10 ms):
//    a hand-off is over when some waiter's next poll finds the slot free;
//  - Bottleneck: one limiter per worker, `datastore: "ioredis"`, the same
//    `id` for all (one cluster), `maxConcurrent: limit`; a cycle is
//    `await limiter.schedule({expiration}, job)` where the job is the hold.
//    Its grant is the job starting, its release the job returning.
// Records, CLOCK_MONOTONIC ns (process.hrtime, the clock sflimit-bench's
// processes use): ask just before the acquire/schedule call, grant when the
// library hands control back (acquire resolved / job started), release just
// before the library is told (release() / the job returning). A grant at or
// after the end is not recorded and given back at once (sflimit-bench
// cancels its waits at the end instead; neither counts such a grant).
'use strict';

const path = require('path');

const now = () => Number(process.hrtime.bigint());
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const nextTurn = () => new Promise((r) => setImmediate(r));

let o = null; // options from the parent
let end = Infinity;
let workers = [];
const rec = { worker: [], ask: [], grant: [], release: [] };
let lost = 0;
let notGranted = 0;

function record(w, ask, grant) {
  rec.worker.push(w.index);
  rec.ask.push(ask);
  rec.grant.push(grant);
  rec.release.push(0);
  return rec.worker.length - 1;
}

// The hold: H ms (drawn from H +- J whole ms with --jitter-ms J, as
// sflimit-bench draws it), or (H = 0) the next turn of the event loop, as
// sflimit-bench's zero-delay timer.
function hold() {
  if (o.hold_ms === 0) return nextTurn();
  const j = o.jitter_ms || 0;
  return sleep(o.hold_ms + (j > 0 ? Math.floor(Math.random() * (2 * j + 1)) - j : 0));
}

/*--- redis-semaphore -------------------------------------------------------*/

async function rsConnect(w, Redis, Semaphore) {
  w.client = new Redis(o.redis_url, { lazyConnect: true, maxRetriesPerRequest: 2 });
  w.client.on('error', () => {}); // the library's calls fail and say why
  await w.client.connect();
  w.sem = new Semaphore(w.client, o.rs_key, o.limit, {
    lockTimeout: o.ttl_ms,
    acquireTimeout: o.acquire_timeout_ms,
    onLockLost: () => {
      lost++;
    },
  });
}

async function rsLoop(w) {
  while (now() < end) {
    const ask = now();
    try {
      await w.sem.acquire();
    } catch (e) {
      if (e && e.name === 'TimeoutError') {
        notGranted++;
        await sleep(100);
        continue;
      }
      throw e;
    }
    const grant = now();
    if (grant < end) {
      const k = record(w, ask, grant);
      await hold();
      rec.release[k] = now();
    }
    await w.sem.release();
  }
}

async function rsClose(w) {
  await w.client.quit();
}

/*--- Bottleneck ------------------------------------------------------------*/

async function bnConnect(w, Redis, Bottleneck) {
  const u = new URL(o.redis_url);
  w.limiter = new Bottleneck({
    id: o.bn_id,
    datastore: 'ioredis',
    clearDatastore: false, // the parent cleared it; all share the first one's settings
    clientOptions: {
      host: u.hostname,
      port: Number(u.port || 6379),
      db: Number(u.pathname.slice(1) || 0),
    },
    maxConcurrent: o.limit,
    Redis,
  });
  w.limiter.on('error', (e) => {
    w.error = e;
  });
  await w.limiter.ready();
}

async function bnLoop(w) {
  const job = async (ask) => {
    const grant = now();
    if (grant >= end) return;
    const k = record(w, ask, grant);
    await hold();
    rec.release[k] = now();
  };
  while (now() < end) {
    const ask = now();
    try {
      // expiration: the job's TTL, as the library strongly recommends.
      await w.limiter.schedule({ expiration: o.ttl_ms }, job, ask);
    } catch (e) {
      lost++;
    }
    if (w.error) throw w.error;
  }
}

async function bnClose(w) {
  await w.limiter.disconnect(true);
}

/*--- The process -----------------------------------------------------------*/

async function main() {
  o = JSON.parse(process.argv[2]);
  const index = Number(process.argv[3]);
  const mods = path.join(__dirname, 'node_modules');
  const Redis = require(path.join(mods, 'ioredis'));
  let lib;
  if (o.library === 'redis-semaphore') {
    const { Semaphore } = require(path.join(mods, 'redis-semaphore'));
    lib = { connect: (w) => rsConnect(w, Redis, Semaphore), loop: rsLoop, close: rsClose };
  } else {
    const Bottleneck = require(path.join(mods, 'bottleneck'));
    lib = { connect: (w) => bnConnect(w, Redis, Bottleneck), loop: bnLoop, close: bnClose };
  }
  workers = [];
  for (let i = 0; i < o.workers; i++) workers.push({ index: index * o.workers + i });
  await Promise.all(workers.map((w) => lib.connect(w)));

  const go = new Promise((resolve) => {
    process.once('message', (m) => resolve(m));
  });
  process.send({ type: 'ready' });
  const m = await go;
  if (m.type !== 'go') throw new Error('expected go');
  end = m.end_ns;
  const cpu0 = process.cpuUsage();
  await Promise.all(workers.map((w) => lib.loop(w)));
  const cpu = process.cpuUsage(cpu0);
  await Promise.all(workers.map((w) => lib.close(w)));
  process.send(
    {
      type: 'records',
      worker: Int32Array.from(rec.worker),
      ask: Float64Array.from(rec.ask),
      grant: Float64Array.from(rec.grant),
      release: Float64Array.from(rec.release),
      lost,
      not_granted: notGranted,
      cpu_us: cpu.user + cpu.system,
    },
    () => process.exit(0)
  );
}

main().catch((e) => {
  process.send({ type: 'failed', err: String((e && e.stack) || e) }, () => process.exit(1));
});
