// The graphile-worker baseline of `bos-bench scheduler`'s drain: the same
// number of due no-op jobs, drained by graphile-worker on the same
// PostgreSQL server at the same concurrency, in a fresh database that is
// dropped afterwards.
//
//   node run.mjs --server postgres://postgres@127.0.0.1:5432/test \
//                --jobs 200000 --concurrency 16 [--local-queue 256]
//
// --local-queue 0 (the default) is graphile-worker's default (one fetch per
// job); a size enables its local queue (batch fetches), which is what BOS's
// runner always does (`--prefetch`).
import pg from "pg";
import { run, makeWorkerUtils, Logger } from "graphile-worker";

// No log line per successful job (as graphile-worker's own perfTest): only
// warnings and errors.
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") console.error(`[${level}] ${message}`);
});

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1]]);
    return acc;
  }, []),
);
const server = args.server ?? "postgres://postgres@127.0.0.1:5432/test";
const jobs = parseInt(args.jobs ?? "200000", 10);
const concurrency = parseInt(args.concurrency ?? "16", 10);
const localQueue = parseInt(args["local-queue"] ?? "0", 10);

const name = `bos_graphile_${process.pid}_${Date.now()}`;
const admin = new pg.Client({ connectionString: server });
await admin.connect();
await admin.query(`create database ${name}`);
const url = new URL(server);
url.pathname = `/${name}`;
const connectionString = url.toString();

try {
  const utils = await makeWorkerUtils({ connectionString, logger });
  await utils.migrate();
  const seedStart = process.hrtime.bigint();
  const due = new Date(Date.now() - 60_000);
  for (let i = 0; i < jobs; i += 10_000) {
    const n = Math.min(10_000, jobs - i);
    await utils.addJobs(
      Array.from({ length: n }, (_, k) => ({ identifier: "noop", payload: { id: i + k }, runAt: due })),
    );
  }
  const seedS = Number(process.hrtime.bigint() - seedStart) / 1e9;
  await utils.release();

  let done = 0;
  let finish;
  const allDone = new Promise((r) => (finish = r));
  // Our own pool, so it can be closed before the database is dropped.
  const pgPool = new pg.Pool({ connectionString, max: Math.max(10, concurrency + 2) });
  // Dropping the database at the end ends its connections (57P01): expected.
  const report = (what) => (e) => e.code === "57P01" || console.error(what, e.message);
  pgPool.on("error", report("pool error"));
  pgPool.on("connect", (c) => c.on("error", report("client error")));
  const worker = { concurrentJobs: concurrency };
  if (localQueue > 0) worker.localQueue = { size: localQueue };
  const start = process.hrtime.bigint();
  const runner = await run({
    pgPool,
    logger,
    noHandleSignals: true,
    preset: { worker },
    taskList: {
      noop: async () => {
        if (++done === jobs) finish();
      },
    },
  });
  runner.events.on("job:error", ({ error }) => console.error("job error", error));
  await allDone;
  // A job counts once graphile-worker has deleted it (its success is
  // recorded), as BOS's drain counts recorded outcomes.
  const check = new pg.Client({ connectionString });
  await check.connect();
  for (;;) {
    const { rows } = await check.query("select count(*)::int as n from graphile_worker._private_jobs");
    if (rows[0].n === 0) break;
    await new Promise((r) => setTimeout(r, 1));
  }
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  await check.end();
  await runner.stop();
  await pgPool.end();
  const rate = jobs / secs;
  console.log(
    `graphile-worker 0.17.3 drain: ${jobs} due no-op jobs (seeded in ${seedS.toFixed(1)} s), ` +
      `concurrency ${concurrency}, local queue ${localQueue || "off"}: ${secs.toFixed(2)} s = ${rate.toFixed(0)} jobs/s`,
  );
  console.log(
    JSON.stringify({
      bench: "graphile-drain",
      jobs,
      concurrency,
      local_queue: localQueue,
      seconds: +secs.toFixed(3),
      jobs_per_s: Math.round(rate),
    }),
  );
} finally {
  await admin.query(`drop database if exists ${name} with (force)`);
  await admin.end();
}
