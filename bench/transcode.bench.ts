/**
 * Transcode throughput: the service against bare ffmpeg with the same arguments.
 *
 *   node dist/bench/transcode.bench.js        (after tsc -p tsconfig.json)
 *   npx tsx bench/transcode.bench.ts
 *
 * The operation: an 8 s 640x480 25 fps H.264 + AAC clip, made at start by the
 * same ffmpeg from its test sources (the committed fixtures are 160x120 and
 * smaller: on them ffmpeg's run is ~0.1 s and the output's ffprobe alone is
 * a tenth of it), to H.264 at a lower resolution (Width 320, Preset veryfast,
 * Crf 28, AAC 64 kbps) in MP4, N times at concurrency C, in one run.
 * BENCH_INPUT=fixture uses fixtures/media/clip-12s.mp4 to Width 128 instead:
 *
 * - bare: the ffmpeg binary the service runs, with the argv the service's
 *   builder makes for this Operation (`buildTranscodeArgs` + the global and
 *   `-progress` options of `ffmpegArgv`), through the service's own Spawner,
 *   C at a time, each into its own output file; no probe, no upload;
 * - service: N Transcode jobs POSTed over loopback HTTP and run by the
 *   in-process worker (MEDIAJOBS_CONCURRENCY = C): each runs ffmpeg (the
 *   input is probed only for a TransConfig check or a large file), probes the
 *   output, hashes and stores it. Time runs from the database clock before the
 *   first POST to the last job's ended_at.
 *
 * Rounds alternate which side goes first; the verdict uses the median ratio
 * (service ÷ bare). Settings: BENCH_JOBS (24), BENCH_ROUNDS (3), BENCH_WARMUP
 * (4), MEDIAJOBS_CONCURRENCY (CPUs; the service's MEDIAJOBS_VIDEO_CONCURRENCY is set to
 * the same, so both sides run C ffmpeg at once, unless given). Target: ratio ≥ 0.95.
 *
 * Each round also prints the CPU per job of both sides, the tools' (this
 * process's waited-for children: ffmpeg, and the service's output ffprobe)
 * and this process's own (the service, plus the benchmark's client), and a
 * CPU ratio from them: on a host other work keeps busy the jobs-per-second
 * ratio swings from round to round, the CPU a job costs much less.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ffmpegArgv } from '../src/media/ffmpeg.js';
import { buildTranscodeArgs, parseTranscode } from '../src/processors/transcode.js';
import {
  bareAndService, bareFfmpegJobsPerSec, makeTranscodeInput, benchConcurrency, BUCKET, envInt, environmentRows, fitQueueToConcurrency, fmt, measureCpu, median, printBlock, printTable, REPO_ROOT, runBenchmark,
  serviceJobsPerSec, startBenchService, type BenchService, type CpuRound,
} from './lib.js';

const JOBS = envInt('BENCH_JOBS', 24);
const ROUNDS = envInt('BENCH_ROUNDS', 3);
const WARMUP = envInt('BENCH_WARMUP', 4, 0);
const CONCURRENCY = benchConcurrency();
const TARGET_RATIO = 0.95;
const FIXTURE = path.join(REPO_ROOT, 'fixtures', 'media', 'clip-12s.mp4');
const USE_FIXTURE = process.env.BENCH_INPUT === 'fixture';
const KEY = 'bench/clip.mp4';
const WIDTH = USE_FIXTURE ? '128' : '320';
const AUDIO_KBPS = USE_FIXTURE ? '32' : '64';
const TRANSCODE = {
  Container: { Format: 'mp4' },
  Video: { Codec: 'H.264', Width: WIDTH, Preset: 'veryfast', Crf: '28' },
  Audio: { Codec: 'aac', Bitrate: AUDIO_KBPS },
};

function transcodeRequest(index: number): string {
  return `<Request><Tag>Transcode</Tag><Input><Object>${KEY}</Object></Input><Operation>`
    + `<Transcode><Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Width>${WIDTH}</Width><Preset>veryfast</Preset><Crf>28</Crf></Video>`
    + `<Audio><Codec>aac</Codec><Bitrate>${AUDIO_KBPS}</Bitrate></Audio></Transcode>`
    + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>bench/out/${index}.mp4</Object></Output></Operation></Request>`;
}

/** Jobs per second through the API and the worker. */
function runService(bench: BenchService, jobs: number): Promise<CpuRound> {
  return measureCpu(jobs, () => serviceJobsPerSec(bench, jobs, transcodeRequest));
}

/** Jobs per second for the same ffmpeg command run directly. */
function runBare(input: string, jobs: number, outDir: string, ffmpegPath: string): Promise<CpuRound> {
  return measureCpu(jobs, () => bareJobsPerSec(input, jobs, outDir, ffmpegPath));
}

function bareJobsPerSec(input: string, jobs: number, outDir: string, ffmpegPath: string): Promise<number> {
  const spec = parseTranscode(TRANSCODE);
  return bareFfmpegJobsPerSec({
    input, jobs, concurrency: CONCURRENCY, outDir, ffmpegPath,
    argsFor: async (tool, i) => ffmpegArgv(buildTranscodeArgs(spec, { input: tool, output: path.join(outDir, `${i}.mp4`) }), path.join(outDir, `${i}.progress`)),
  });
}

await runBenchmark('transcode', async (db, use) => {
  const bench = use(await startBenchService(db, { env: { MEDIAJOBS_CONCURRENCY: String(CONCURRENCY) } }));
  await bench.service.storage.put(BUCKET, KEY, USE_FIXTURE ? await fs.readFile(FIXTURE) : await fs.readFile(await makeTranscodeInput(db.dataDir, bench.config.ffmpegPath)));
  const input = path.join(bench.config.dataDir, 'buckets', BUCKET, KEY);
  await fitQueueToConcurrency(bench);
  const outDir = path.join(db.dataDir, 'bare-out');
  printBlock('Transcode benchmark', [
    ...(await environmentRows(bench, db)),
    ['operation', `${USE_FIXTURE ? path.basename(FIXTURE) : '8 s 640x480 (made at start)'} → H.264 ${WIDTH} px wide, veryfast, Crf 28, AAC ${AUDIO_KBPS}k, MP4; ${JOBS} jobs, concurrency ${CONCURRENCY}, ${os.availableParallelism()} CPUs`],
  ]);
  if (WARMUP > 0) {
    await runBare(input, WARMUP, outDir, bench.config.ffmpegPath);
    await runService(bench, WARMUP);
  }
  const rows: string[][] = [];
  const ratios: number[] = [];
  const cpuRatios: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const { bare, service } = await bareAndService(round, () => runBare(input, JOBS, outDir, bench.config.ffmpegPath), () => runService(bench, JOBS));
    ratios.push(service.jobsPerSec / bare.jobsPerSec);
    cpuRatios.push(bare.toolsCpuMs / (service.toolsCpuMs + service.ownCpuMs - bare.ownCpuMs));
    rows.push([
      String(round), fmt(bare.jobsPerSec, 2), fmt(service.jobsPerSec, 2), fmt(service.jobsPerSec / bare.jobsPerSec, 3),
      `${fmt(bare.toolsCpuMs, 0)} / ${fmt(service.toolsCpuMs, 0)}`, `${fmt(bare.ownCpuMs, 1)} / ${fmt(service.ownCpuMs, 1)}`,
    ]);
  }
  printTable(['round', 'bare ffmpeg jobs/s', 'service jobs/s', 'ratio', 'tools CPU ms/job bare / service', 'own CPU ms/job bare / service'], rows);
  const ratio = median(ratios);
  console.log(`\nratio (service ÷ bare ffmpeg), median of ${ROUNDS}: ${fmt(ratio, 3)}  (target ≥ ${TARGET_RATIO}: ${ratio >= TARGET_RATIO ? 'met' : 'missed'})`);
  // What the ratio would be on a host with nothing else running: bare's tool CPU over all the CPU a service job costs here (PostgreSQL's not counted).
  console.log(`CPU ratio (bare ffmpeg's CPU ÷ the service's tools + own CPU beyond bare's), median: ${fmt(median(cpuRatios), 3)}`);
});
