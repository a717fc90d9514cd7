/**
 * Group commit for the task API's hot statements (create, claim, end), as
 * JobInserter does for CreateMediaJobs: per key, one statement (or one
 * transaction: the task API's rounds, runRound in task-service.ts) is out at
 * a time, and the calls that arrive while it is out go together in the next
 * one. A commit costs this 2-core machine's PostgreSQL 4–8 ms of fsync, so
 * statements per second, not rows, bound the task API: one statement per call
 * gave 75 creates/s from one client and 150/s from four. A lone call is sent
 * at once and waits for nothing.
 *
 * `run` gets the waiting inputs (at most `maxBatch`) and answers one output
 * per input, in order. Its statement must be atomic: when it throws, each
 * call of the batch is run again alone, so a call whose input the database
 * refuses (a NUL in a string) fails by itself, as JobInserter does.
 */
export class Batcher<In, Out> {
  private readonly lines = new Map<string, { out: boolean; waiting: Array<{ input: In; resolve(out: Out): void; reject(err: unknown): void }> }>();

  constructor(private readonly run: (key: string, inputs: In[]) => Promise<Out[]>, private readonly maxBatch = 64) {}

  submit(key: string, input: In): Promise<Out> {
    let line = this.lines.get(key);
    if (!line) {
      line = { out: false, waiting: [] };
      this.lines.set(key, line);
    }
    const answer = new Promise<Out>((resolve, reject) => line.waiting.push({ input, resolve, reject }));
    this.send(key);
    return answer;
  }

  private send(key: string): void {
    const line = this.lines.get(key);
    if (!line || line.out) return;
    if (line.waiting.length === 0) {
      this.lines.delete(key);
      return;
    }
    const batch = line.waiting.splice(0, this.maxBatch);
    line.out = true;
    this.run(key, batch.map((b) => b.input)).then(
      (outputs): unknown => batch.forEach((b, i) => b.resolve(outputs[i])),
      // Nothing of a failed statement took effect: each call on its own, so one that cannot be stored fails alone.
      (err: unknown): unknown => batch.length === 1
        ? batch[0].reject(err)
        : Promise.all(batch.map((b) => this.run(key, [b.input]).then((outputs) => b.resolve(outputs[0]), b.reject))),
    ).finally(() => {
      line.out = false;
      this.send(key);
    });
  }
}
