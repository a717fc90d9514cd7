import type { Db } from '../store/database.js';
import { TASKS_CHANNEL } from '../store/tasks.repository.js';

/** A long poll's place in line: taken before it looks for a task, so a wake-up between the look and the wait is not lost. */
export interface WaitTicket {
  /** Resolves when a task may have arrived for the app since the ticket was taken, or after `ms`, or on `signal`. */
  wait(ms: number, signal?: AbortSignal): Promise<void>;
  release(): void;
}

/**
 * Wakes get_next_task long polls when a task arrives: one LISTEN on
 * TASKS_CHANNEL for the whole process (payload: the app's APPID, so only
 * that app's polls look again). A notification can be lost (the LISTEN
 * connection reconnecting); the polls also look again every `pollMs`.
 */
export class TaskWaiters {
  private readonly tickets = new Map<string, Set<Ticket>>();
  private subscription: Promise<unknown> | undefined;

  constructor(private readonly db: Db) {}

  /** Subscribes on first use; a process that never long-polls never listens. */
  async ticket(appid: string): Promise<WaitTicket> {
    this.subscription ??= this.db.listen(TASKS_CHANNEL, (payload) => this.wake(payload));
    await this.subscription;
    let set = this.tickets.get(appid);
    if (!set) {
      set = new Set();
      this.tickets.set(appid, set);
    }
    const ticket = new Ticket(() => {
      set.delete(ticket);
      if (set.size === 0 && this.tickets.get(appid) === set) this.tickets.delete(appid);
    });
    set.add(ticket);
    return ticket;
  }

  /** Wakes the polls of one app, or of every app when `appid` is empty (tasks taken back from dead workers). */
  wake(appid: string): void {
    const sets = appid === '' ? [...this.tickets.values()] : [this.tickets.get(appid)];
    for (const set of sets) for (const ticket of set ?? []) ticket.wake();
  }
}

class Ticket implements WaitTicket {
  private woken = false;
  private resolveWait: (() => void) | undefined;

  constructor(private readonly onRelease: () => void) {}

  wake(): void {
    this.woken = true;
    this.resolveWait?.();
  }

  wait(ms: number, signal?: AbortSignal): Promise<void> {
    if (this.woken || signal?.aborted) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.resolveWait = undefined;
        this.woken = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done);
      this.resolveWait = done;
    });
  }

  release(): void {
    this.resolveWait?.();
    this.onRelease();
  }
}
