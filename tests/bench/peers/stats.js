// stats.js - the lease benchmark's figures for the peers, defined exactly as
// tests/bench/bench_stats.c defines them for sfl (same window, same
// numbering of hand-offs, same percentiles), so the columns compare:
//  - a cycle is a grant whose grant time lies in the measured window
//    [start, end);
//  - wait = grant time - ask time, over those grants;
//  - hand-off: all grant times and all release times of the run (warm-up
//    included) are sorted; the run starts with no slot held, so with limit L
//    the k-th release (from 0) frees the slot that the (k+L)-th grant takes:
//    hand-off k = grant[k+L] - release[k], whichever worker, process or
//    connection made that grant. Reported over the k whose release lies in
//    the window;
//  - percentiles are nearest-rank; Jain's index is over the cycles of every
//    worker, (sum x)^2 / (n sum x^2);
//  - not in bench_stats.c: the share of those hand-offs whose grant went to
//    the worker whose release it follows (same worker, no hand-off between
//    nodes at all);
//  - max holders: the grant/release timeline of the whole run, +1 on a
//    grant, -1 on a release, a release first when both share a time.
// Times are CLOCK_MONOTONIC nanoseconds (process.hrtime), as Numbers.
'use strict';

function percentile(sorted, p) {
  const n = sorted.length;
  if (n === 0) return NaN;
  let rank = Math.ceil((p / 100) * n);
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  return sorted[rank - 1];
}

function jain(x) {
  let sum = 0;
  let sq = 0;
  for (const v of x) {
    sum += v;
    sq += v * v;
  }
  if (x.length === 0 || sq === 0) return 1;
  return (sum * sum) / (x.length * sq);
}

function maxHolders(recs) {
  const ev = [];
  for (const r of recs) {
    ev.push([r.grant, 1]);
    if (r.release) ev.push([r.release, -1]);
  }
  ev.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let cur = 0;
  let best = 0;
  for (const [, d] of ev) {
    cur += d;
    if (cur > best) best = cur;
  }
  return best;
}

const byNumber = (a, b) => a - b;

// recs: [{worker, ask, grant, release (0: still held)}], every process's.
function figures(recs, nworkers, limit, start, end) {
  const byGrant = recs.slice().sort((a, b) => a.grant - b.grant);
  const byRelease = recs.filter((r) => r.release).sort((a, b) => a.release - b.release);
  const grants = byGrant.map((r) => r.grant);
  const releases = byRelease.map((r) => r.release);
  const waits = [];
  const perWorker = new Array(nworkers).fill(0);
  for (const r of recs) {
    if (r.grant >= start && r.grant < end) {
      waits.push((r.grant - r.ask) / 1e6);
      if (r.worker >= 0 && r.worker < nworkers) perWorker[r.worker]++;
    }
  }
  waits.sort(byNumber);
  const handoffs = [];
  const alone = [];
  let negative = 0;
  let same = 0;
  for (let k = 0; k < releases.length && k + limit < grants.length; k++) {
    if (releases[k] < start || releases[k] >= end) continue;
    const h = (grants[k + limit] - releases[k]) / 1e6;
    if (h < 0) negative++;
    if (byGrant[k + limit].worker === byRelease[k].worker) same++;
    handoffs.push(h);
    if (
      (k === 0 || releases[k] - releases[k - 1] >= 1e6) &&
      (k + 1 === releases.length || releases[k + 1] - releases[k] >= 1e6)
    )
      alone.push(h);
  }
  handoffs.sort(byNumber);
  alone.sort(byNumber);
  // Of the window's releases, the share less than 1 ms after the one before
  // (any worker): slots whose cycles run in step (bench_stats.c).
  let close = 0;
  let measured = 0;
  for (let k = 1; k < releases.length; k++) {
    if (releases[k] < start || releases[k] >= end) continue;
    measured++;
    if (releases[k] - releases[k - 1] < 1e6) close++;
  }
  return {
    cycles: waits.length,
    cycles_per_s: waits.length / ((end - start) / 1e9),
    handoffs: handoffs.length,
    negative_handoffs: negative,
    // Of those hand-offs, the share whose next grant went to the worker
    // that had just released (it asked again and got its slot back).
    handoff_same_worker: handoffs.length ? same / handoffs.length : NaN,
    releases_close: measured ? close / measured : NaN,
    // Hand-off p50 over the releases with no other within 1 ms either side.
    handoff_alone_p50: percentile(alone, 50),
    handoff_p50: percentile(handoffs, 50),
    handoff_p90: percentile(handoffs, 90),
    handoff_p99: percentile(handoffs, 99),
    wait_p50: percentile(waits, 50),
    wait_p99: percentile(waits, 99),
    wait_max: waits.length ? waits[waits.length - 1] : NaN,
    jain: jain(perWorker),
    max_concurrent: maxHolders(recs),
  };
}

module.exports = { figures, percentile, jain, maxHolders };
