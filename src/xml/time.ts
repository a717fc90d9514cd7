/**
 * CI's time format: `2022-06-27T15:23:10+0800`, in the server's local time
 * zone (set `TZ` to choose it), offset without a colon. Unset times are `-`.
 */
export const UNSET_TIME = '-';

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

export function formatCiTime(date: Date | null | undefined): string {
  if (!date) return UNSET_TIME;
  const offsetMinutes = -date.getTimezoneOffset();
  const sign = offsetMinutes >= 0 ? '+' : '-';
  const abs = Math.abs(offsetMinutes);
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}${sign}${pad(Math.floor(abs / 60))}${pad(abs % 60)}`;
}

const CI_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(Z|[+-]\d{2}:?\d{2})$/;

/** Parses `%Y-%m-%dT%H:%M:%S%z` (also `+08:00` and `Z`); undefined when malformed. */
export function parseCiTime(text: string): Date | undefined {
  const m = CI_TIME.exec(text);
  if (!m) return undefined;
  // `new Date` rolls 2022-04-31 over to May 1 and accepts hour 24; %d and %H do not.
  const [year, month, day, hour] = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])];
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23) return undefined;
  const offset = m[7] === 'Z' ? '+00:00' : `${m[7].slice(0, 3)}:${m[7].slice(-2)}`;
  const date = new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}${offset}`);
  // Outside years 1–9999 (UTC) the database cannot take the value (9999-12-31T23:59:59-2359 is in year 10000).
  if (Number.isNaN(date.getTime()) || date.getUTCFullYear() < 1 || date.getUTCFullYear() > 9999) return undefined;
  return date;
}

/** Days in `month` (1–12) of `year`; setUTCFullYear, unlike Date.UTC, does not map years 0–99 to 1900–1999. */
function daysInMonth(year: number, month: number): number {
  const date = new Date(0);
  date.setUTCFullYear(year, month, 0);
  return date.getUTCDate();
}
