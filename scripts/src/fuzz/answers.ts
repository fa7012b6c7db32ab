// Why what the gateway answered is not what the oracle expects: one answer, or a batch's answers
// (matched as a multiset), each named with the element it answers; and the expectations as text.
import { isDeepStrictEqual } from 'node:util';
import { RpcError } from '@agentgate/shared';
import type { Expected, ExpectedAnswer } from './oracle.js';
import type { WireFrame } from './wire.js';

const describeAnswer = (a: ExpectedAnswer): string =>
  'result' in a
    ? `result ${JSON.stringify(a.result)} (id ${JSON.stringify(a.id)})`
    : `error ${a.code} (id ${JSON.stringify(a.id)})${a.droppedKeys ? ` droppedKeys ${JSON.stringify(a.droppedKeys)}` : ''}`;

export function describeExpected(e: Expected): string {
  switch (e.kind) {
    case 'close':
      return `close ${e.code}`;
    case 'none':
      return 'no answer';
    case 'one':
      return describeAnswer(e.answer);
    case 'batch':
      return `a batch of ${e.answers.length}: ${e.answers.map(describeAnswer).join('; ')}`;
  }
}

export const clip = (s: string, max = 600) => (s.length > max ? `${s.slice(0, max)}…` : s);
export const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Why `got` is not the answer `exp` (undefined when it is). */
export function answerProblem(exp: ExpectedAnswer, got: unknown): string | undefined {
  if (!isRecord(got)) return 'not a JSON-RPC response object';
  if (got['jsonrpc'] !== '2.0') return 'jsonrpc is not "2.0"';
  if (!isDeepStrictEqual(got['id'], exp.id)) return `id ${JSON.stringify(got['id'])}, not ${JSON.stringify(exp.id)}`;
  const hasResult = Object.hasOwn(got, 'result');
  const hasError = Object.hasOwn(got, 'error');
  if (hasResult === hasError) return 'not exactly one of result and error';
  if ('result' in exp) {
    if (!hasResult) return `error ${JSON.stringify((got['error'] as { code?: unknown })?.code)} instead of a result`;
    return isDeepStrictEqual(got['result'], exp.result) ? undefined : 'another result';
  }
  if (!hasError) return `a result instead of error ${exp.code}`;
  const error = got['error'];
  if (!isRecord(error)) return 'error is not an object';
  if (error['code'] !== exp.code) return `error ${JSON.stringify(error['code'])} instead of ${exp.code}`;
  if (typeof error['message'] !== 'string') return 'error.message is not a string';
  const data = error['data'];
  if (exp.code === RpcError.InvalidParams) {
    const errors = isRecord(data) ? data['errors'] : undefined;
    const ok =
      Array.isArray(errors) &&
      errors.length > 0 &&
      errors.every((e) => isRecord(e) && typeof e['path'] === 'string' && typeof e['message'] === 'string');
    if (!ok) return '-32602 without data.errors [{path, message}]';
  }
  if (exp.droppedKeys && !(isRecord(data) && isDeepStrictEqual(data['droppedKeys'], exp.droppedKeys))) {
    return `droppedKeys ${clip(JSON.stringify(isRecord(data) ? data['droppedKeys'] : data))}`;
  }
  return undefined;
}

/**
 * Why the batch answer `got` is not `answers` (matched as a multiset: JSON-RPC lets a batch answer
 * in any order); names the element whose answer is wrong, with its text.
 */
export function batchProblem(answers: ExpectedAnswer[], got: unknown, frame: WireFrame): string | undefined {
  if (!Array.isArray(got)) return `not an array: ${clip(JSON.stringify(got))}`;
  const left = [...got];
  const unmatched: ExpectedAnswer[] = [];
  for (const a of answers) {
    const i = left.findIndex((g) => answerProblem(a, g) === undefined);
    if (i < 0) unmatched.push(a);
    else left.splice(i, 1);
  }
  if (unmatched.length === 0 && left.length === 0) return undefined;
  let elements: unknown[] = [];
  try {
    elements = JSON.parse(frame.data.toString('utf8')) as unknown[];
  } catch {
    /* the oracle parsed it: unreachable */
  }
  const lines = unmatched.map((a) => {
    const g = left.find((x) => isRecord(x) && isDeepStrictEqual(x['id'], a.id));
    const el = a.at === undefined ? undefined : elements[a.at];
    return (
      `element ${a.at} ${clip(JSON.stringify(el), 400)}: expected ${describeAnswer(a)}, ` +
      `got ${g === undefined ? 'no answer with its id' : clip(JSON.stringify(g), 400)}`
    );
  });
  if (got.length !== answers.length) lines.unshift(`${got.length} answers, not ${answers.length}`);
  return lines.join('\n      ');
}
