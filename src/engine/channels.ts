/** LISTEN/NOTIFY channels. Payloads are hints only: every listener also polls. */
export const CHANNELS = {
  /** A job became claimable (created, resumed, retried), or a full queue freed a slot (sql/0005 sends that one). */
  jobsAvailable: 'mediajobs_jobs_available',
  /** A running job was cancelled; payload is its JobId. */
  jobCancelled: 'mediajobs_job_cancelled',
  /** A callback delivery is due. */
  deliveriesAvailable: 'mediajobs_deliveries_available',
  /** Jobs, callback deliveries and queues that changed, sent by triggers (sql/0012): the console's feed and the metrics' counts. */
  changes: 'mediajobs_changes',
} as const;
