/**
 * Child process for bench/lib.ts `bareProbesInChild`: receives one
 * BareRequest over IPC, runs the probes, sends the BareRun back and exits.
 * Not a benchmark on its own.
 */
import { bareProbes, type BareRequest } from './lib.js';

process.once('message', (message) => {
  const { binary, args, jobs, concurrency, warmup } = message as BareRequest;
  const warm = warmup > 0 ? bareProbes(binary, args, warmup, concurrency) : Promise.resolve();
  warm.then(() => bareProbes(binary, args, jobs, concurrency)).then(
    (run) => process.send!(run, () => process.exit(0)),
    (err: Error) => {
      console.error(`ffprobe-loop: ${err.message}`);
      process.exit(1);
    },
  );
});
