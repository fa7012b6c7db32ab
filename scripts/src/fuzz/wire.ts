// What the fuzzer puts on the wire: one WebSocket message per frame (text or binary, any bytes),
// and the JSON trees it builds frames from — with raw number tokens (`1e309`, `18446744073709551616`)
// and `__proto__` members, which JSON.stringify never writes.
import { isUtf8 } from 'node:buffer';

/** One WebSocket message: a text frame (whose bytes need not be UTF-8) or a binary frame. */
export interface WireFrame {
  /** What the generator meant to exercise (for the summary); the oracle never reads it. */
  label: string;
  binary: boolean;
  data: Buffer;
}

/** A JSON token written as is. */
export class Raw {
  constructor(readonly text: string) {}
}

/** A JSON object as an ordered list of members: a `__proto__` member is a member like any other. */
export class Obj {
  constructor(readonly entries: readonly (readonly [string, Json])[]) {}
}

export type Json = null | boolean | number | string | Raw | Obj | readonly Json[];

export function toJson(v: Json): string {
  if (v instanceof Raw) return v.text;
  if (v instanceof Obj) return `{${v.entries.map(([k, x]) => `${JSON.stringify(k)}:${toJson(x)}`).join(',')}}`;
  if (Array.isArray(v)) return `[${v.map(toJson).join(',')}]`;
  // Lone surrogates come out escaped (`"\ud800"`), so the text stays valid UTF-8.
  return JSON.stringify(v);
}

export function textFrame(label: string, text: string): WireFrame {
  return { label, binary: false, data: Buffer.from(text, 'utf8') };
}

/** A readable excerpt of a frame for a report: its start, its length, and how it was sent. */
export function preview(frame: WireFrame, max = 240): string {
  const readable = !frame.binary && isUtf8(frame.data);
  const kind = frame.binary ? 'binary' : readable ? 'text' : 'text (not UTF-8, hex)';
  const text = frame.data.toString(readable ? 'utf8' : 'hex');
  const shown = text.length > max ? `${text.slice(0, max)}…` : text;
  return `${kind} frame of ${frame.data.length} bytes: ${JSON.stringify(shown)}`;
}
