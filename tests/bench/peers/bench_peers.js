#!/usr/bin/env node
// bench_peers.js - sflimit-bench's lease workload on a peer library, for
// tests/bench/run.sh's side-by-side table (issue #17):
//
//   node tests/bench/peers/bench_peers.js LIBRARY --redis URL --procs P
//        --workers W --limit L --hold-ms H --seconds T [--warmup S] [--jitter-ms J]
//
// LIBRARY: redis-semaphore or bottleneck (the versions package.json pins;
// `npm ci` in this directory first). P processes x W workers (worker.js),
// each an independent node with its own connection, cycle ask -> hold H ms
// -> release on one semaphore of limit L. As in bench_lease.c: the keys are
// cleared first; every child connects, says ready, and all start at the
// parent's go; S warm-up seconds (default 1), then T measured; the parent
// reads INFO at the window's start and end; the figures (stats.js, the
// definitions of bench_stats.c) go to stdout as one JSON line with
// sflimit-bench lease's field names, and a summary to stderr.
//
// Redis figures, per cycle, from INFO deltas over the window: server CPU
// (used_cpu_user + used_cpu_sys) and calls (the sum of every commandstats
// `calls`, which counts the calls scripts make, as total_commands_processed
// does; the parent's own INFO at the start is taken off).
//
// Keys: redis-semaphore's semaphore:sflpeer:rs (the library puts
// "semaphore:" in front of the key it is given), Bottleneck's
// b_sflpeer-bn_* (its id); both deleted before and after the run.
//
// Exit: 0; 1 if a process failed or more than L held at once; 2 on bad
// arguments or a library not installed.
'use strict';

const { fork } = require('child_process');
const path = require('path');
const { figures } = require('./stats');

const LIBS = {
  'redis-semaphore': { pkg: 'redis-semaphore' },
  bottleneck: { pkg: 'bottleneck' },
};
const RS_KEY = 'sflpeer:rs';
const BN_ID = 'sflpeer-bn';
const TTL_MS = 5000; // sflimit-bench's lease TTL

const now = () => Number(process.hrtime.bigint());
const sleepUntil = (ns) =>
  new Promise((r) => setTimeout(r, Math.max(0, Math.ceil((ns - now()) / 1e6))));

function usage(msg) {
  process.stderr.write(
    `bench_peers.js: ${msg}\n` +
      'usage: bench_peers.js redis-semaphore|bottleneck --redis URL --procs P --workers W\n' +
      '       --limit L --hold-ms H --seconds T [--warmup S] [--jitter-ms J]\n'
  );
  process.exit(2);
}

function parseArgs(argv) {
  const o = { library: argv[0], warmup: 1, jitter_ms: 0 };
  if (!LIBS[o.library]) usage(`library: '${o.library || ''}' is not redis-semaphore or bottleneck`);
  const spec = {
    '--redis': ['redis_url', (v) => (/^redis:\/\/[^/]+/.test(v) ? v : null), 'a redis:// URL'],
    '--procs': ['procs', (v) => int(v, 1, 64), 'a number 1..64'],
    '--workers': ['workers', (v) => int(v, 1, 1000), 'a number 1..1000'],
    '--limit': ['limit', (v) => int(v, 1, 1000), 'a number 1..1000'],
    '--hold-ms': ['hold_ms', (v) => int(v, 0, 3600000), 'milliseconds 0..3600000'],
    '--seconds': ['seconds', (v) => num(v, 0.001, 86400), 'seconds > 0'],
    '--jitter-ms': ['jitter_ms', (v) => int(v, 0, 3600000), 'milliseconds 0..3600000'],
    '--warmup': ['warmup', (v) => num(v, 0, 3600), 'seconds >= 0'],
  };
  for (let i = 1; i < argv.length; i += 2) {
    const s = spec[argv[i]];
    if (!s) usage(`unknown option '${argv[i]}'`);
    const v = argv[i + 1] === undefined ? null : s[1](argv[i + 1]);
    if (v === null) usage(`${argv[i]} '${argv[i + 1] || ''}': expected ${s[2]}`);
    o[s[0]] = v;
  }
  for (const k of ['--redis', '--procs', '--workers', '--limit', '--hold-ms', '--seconds'])
    if (o[spec[k][0]] === undefined) usage(`${k} is required`);
  if (o.jitter_ms > o.hold_ms) usage(`--jitter-ms ${o.jitter_ms}: more than --hold-ms`);
  return o;
}

function int(v, lo, hi) {
  if (!/^[0-9]+$/.test(v)) return null;
  const n = Number(v);
  return n >= lo && n <= hi ? n : null;
}

function num(v, lo, hi) {
  const n = Number(v);
  return v !== '' && Number.isFinite(n) && n >= lo && n <= hi ? n : null;
}

// The INFO fields counted: CPU seconds and calls per command.
async function serverCounts(r) {
  const text = await r.info('all');
  const f = (name) => {
    const m = text.match(new RegExp(`^${name}:([0-9.]+)`, 'm'));
    return m ? Number(m[1]) : NaN;
  };
  const calls = {};
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=([0-9]+)/gm)) calls[m[1]] = Number(m[2]);
  return { cpu_s: f('used_cpu_user') + f('used_cpu_sys'), calls };
}

async function clearKeys(r) {
  await r.del(`semaphore:${RS_KEY}`);
  let cursor = '0';
  do {
    const [next, keys] = await r.scan(cursor, 'MATCH', `b_${BN_ID}_*`, 'COUNT', 1000);
    if (keys.length) await r.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

function fmt(v, d = 3) {
  return Number.isFinite(v) ? v.toFixed(d) : 'null';
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  let Redis;
  let version;
  try {
    Redis = require(path.join(__dirname, 'node_modules', 'ioredis'));
    version = require(path.join(__dirname, 'node_modules', LIBS[o.library].pkg, 'package.json'))
      .version;
  } catch (e) {
    process.stderr.write(`bench_peers.js: ${o.library} not installed here (run npm ci in ${__dirname})\n`);
    process.exit(2);
  }
  const r = new Redis(o.redis_url, { lazyConnect: true, maxRetriesPerRequest: 2 });
  r.on('error', () => {}); // connect() and every command report their own
  try {
    await r.connect();
  } catch (e) {
    process.stderr.write(`bench_peers.js: --redis ${o.redis_url}: ${e.message}\n`);
    process.exit(1);
  }
  await clearKeys(r);

  const childOpts = {
    library: o.library,
    redis_url: o.redis_url,
    workers: o.workers,
    limit: o.limit,
    hold_ms: o.hold_ms,
    jitter_ms: o.jitter_ms,
    ttl_ms: TTL_MS,
    // Nobody gives up waiting while the run lasts.
    acquire_timeout_ms: Math.ceil((o.warmup + o.seconds) * 1000) + 60000,
    rs_key: RS_KEY,
    bn_id: BN_ID,
  };
  const kids = [];
  const failures = [];
  for (let i = 0; i < o.procs; i++) {
    const c = fork(path.join(__dirname, 'worker.js'), [JSON.stringify(childOpts), String(i)], {
      serialization: 'advanced',
    });
    const k = { c, ready: null, done: null };
    k.ready = new Promise((res, rej) => {
      k.done = new Promise((dres) => {
        c.on('message', (m) => {
          if (m.type === 'ready') res();
          else if (m.type === 'records') dres(m);
          else if (m.type === 'failed') {
            failures.push(`process ${i}: ${m.err}`);
            rej(new Error(m.err));
            dres(null);
          }
        });
        c.on('exit', (code) => {
          if (code !== 0) failures.push(`process ${i} exited ${code}`);
          rej(new Error('exited'));
          dres(null);
        });
      });
    });
    k.ready.catch(() => {});
    kids.push(k);
  }
  const connectDeadline = new Promise((_, rej) => setTimeout(() => rej(new Error('timeout')), 15000));
  try {
    await Promise.race([Promise.all(kids.map((k) => k.ready)), connectDeadline]);
  } catch (e) {
    for (const k of kids) k.c.kill('SIGKILL');
    process.stderr.write(
      `bench_peers.js: processes not ready: ${failures.join('; ') || e.message}\n`
    );
    process.exit(1);
  }
  const go = now();
  const start = go + o.warmup * 1e9;
  const end = start + o.seconds * 1e9;
  for (const k of kids) k.c.send({ type: 'go', go_ns: go, start_ns: start, end_ns: end });

  await sleepUntil(start);
  const before = await serverCounts(r);
  await sleepUntil(end);
  const after = await serverCounts(r);
  const results = await Promise.all(kids.map((k) => k.done));
  await clearKeys(r);
  await r.quit();
  if (failures.length || results.some((m) => !m)) {
    process.stderr.write(`bench_peers.js: ${failures.join('; ')}\n`);
    process.exit(1);
  }

  const recs = [];
  let lost = 0;
  let notGranted = 0;
  let cpuUs = 0;
  for (const m of results) {
    for (let j = 0; j < m.worker.length; j++)
      recs.push({ worker: m.worker[j], ask: m.ask[j], grant: m.grant[j], release: m.release[j] });
    lost += m.lost;
    notGranted += m.not_granted;
    cpuUs += m.cpu_us;
  }
  const n = o.procs * o.workers;
  const f = figures(recs, n, o.limit, start, end);
  const calls = {};
  let total = 0;
  for (const [cmd, v] of Object.entries(after.calls)) {
    calls[cmd] = v - (before.calls[cmd] || 0) - (cmd === 'info' ? 1 : 0);
    total += calls[cmd];
  }
  const perCycle = f.cycles > 0 ? total / f.cycles : NaN;
  const cpuPerCycle = f.cycles > 0 ? ((after.cpu_s - before.cpu_s) * 1e6) / f.cycles : NaN;

  process.stdout.write(
    `{"library":"${o.library}","version":"${version}","procs":${o.procs},"workers":${n},` +
      `"limit":${o.limit},"hold_ms":${o.hold_ms},"jitter_ms":${o.jitter_ms},` +
      `"cycles":${f.cycles},` +
      `"cycles_per_s":${f.cycles_per_s.toFixed(1)},"handoff_ms_p50":${fmt(f.handoff_p50)},` +
      `"handoff_ms_p90":${fmt(f.handoff_p90)},"handoff_ms_p99":${fmt(f.handoff_p99)},` +
      `"wait_ms_p50":${fmt(f.wait_p50)},"wait_ms_p99":${fmt(f.wait_p99)},` +
      `"wait_ms_max":${fmt(f.wait_max)},"jain_fairness":${f.jain.toFixed(4)},` +
      `"max_concurrent_seen":${f.max_concurrent},` +
      `"handoff_same_worker":${fmt(f.handoff_same_worker, 4)},` +
      `"releases_close":${fmt(f.releases_close, 4)},` +
      `"handoff_ms_p50_alone":${fmt(f.handoff_alone_p50)},` +
      `"redis_cpu_us_per_cycle":${fmt(cpuPerCycle)},` +
      `"redis_commands_per_cycle":${fmt(perCycle)}}\n`
  );
  const top = Object.entries(calls)
    .filter(([, v]) => v > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([cmd, v]) => `${cmd} ${(v / f.cycles).toFixed(2)}`)
    .join(', ');
  process.stderr.write(
    `lease (${o.library} ${version}): ${o.procs} procs x ${o.workers} workers (${n} nodes), ` +
      `limit ${o.limit}, hold ${o.hold_ms} ms, ${o.seconds} s measured\n` +
      `  cycles        ${f.cycles} (${f.cycles_per_s.toFixed(1)}/s)\n` +
      `  hand-off ms   p50 ${fmt(f.handoff_p50)}  p90 ${fmt(f.handoff_p90)}  p99 ` +
      `${fmt(f.handoff_p99)}  (${f.handoffs} hand-offs${f.negative_handoffs ? ', SOME NEGATIVE' : ''})\n` +
      `                ${fmt(100 * f.handoff_same_worker, 1)} % of them back to the worker ` +
      `that released\n` +
      `                ${fmt(100 * f.releases_close, 1)} % of releases < 1 ms after the one ` +
      `before; p50 ${fmt(f.handoff_alone_p50)} over the releases alone (none within 1 ms)\n` +
      `  wait ms       p50 ${fmt(f.wait_p50)}  p99 ${fmt(f.wait_p99)}  max ${fmt(f.wait_max)}\n` +
      `  fairness      jain ${f.jain.toFixed(4)}   max holders seen ${f.max_concurrent} ` +
      `(limit ${o.limit})${f.max_concurrent > o.limit ? '  LIMIT EXCEEDED' : ''}\n` +
      `  redis/cycle   ${fmt(perCycle, 2)} calls (commandstats, script calls included): ${top}\n` +
      `  cpu/cycle     redis-server ${fmt(cpuPerCycle, 1)} us (user + system, in the window);\n` +
      `                benchmark processes ${fmt(cpuUs / Math.max(1, recs.length), 1)} us ` +
      `(the workers' loops)\n` +
      (lost || notGranted
        ? `  leases lost or jobs failed ${lost}, acquires timed out ${notGranted}\n`
        : '')
  );
  process.exit(f.max_concurrent > o.limit ? 1 : 0);
}

main().catch((e) => {
  process.stderr.write(`bench_peers.js: ${(e && e.stack) || e}\n`);
  process.exit(1);
});
