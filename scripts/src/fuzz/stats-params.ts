// UpdateStats params (SPEC §4): connections by protocol, the int counters, the median latency and
// metrics with labels, valid or (when fuzzy) wrong anywhere, with limits crossed now and then.
import fc, { type Arbitrary } from 'fast-check';
import {
  field,
  intValue,
  junk,
  latencyValue,
  nearLimit,
  noMember,
  object,
  opt,
  protoMember,
  required,
  type Shape,
  text,
} from './json-values.js';
import { INT_FIELDS } from './oracle.js';
import { type Json, Obj } from './wire.js';

const protoKey = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      'ssh',
      'vscode',
      'jetbrains',
      'reconnecting-pty',
      '__proto__',
      'constructor',
      'toString',
      '',
      '\ud800',
      'a\udfffb',
      'é',
      'x\u0000y',
      // Line terminators: a key that `.` in a pattern does not match.
      'line\nbreak',
      'ls\u2028',
    ),
  },
  { weight: 1, arbitrary: text },
);

function protoMap(fuzzy: boolean): Arbitrary<Json> {
  return fc
    .array(fc.tuple(protoKey, field(intValue, fuzzy)), { maxLength: 5 })
    .map((entries) => new Obj(entries) as Json);
}

const labelName = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      'host',
      'le',
      'agent_name',
      'username',
      'workspace_name',
      'template_name',
      '__proto__',
      '1bad',
      'bad-name',
      '',
    ),
  },
  { weight: 1, arbitrary: text },
);

function label({ fuzzy, small }: Shape): Arbitrary<Json> {
  // SPEC §4: a label value over 1024 bytes drops the metric, never the frame.
  const value = small ? text : fc.oneof({ weight: 6, arbitrary: text }, { weight: 1, arbitrary: nearLimit(1024) });
  return object([required('name', labelName, fuzzy), required('value', value, fuzzy)]);
}

const metricName = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      'cpu_seconds_total',
      'mem:bytes',
      '_x',
      'agent_cpu',
      'coderd_agentstats_up',
      '1abc',
      'bad-name',
      'with space',
      '',
      '\ud800',
      'é',
    ),
  },
  { weight: 1, arbitrary: text },
);

const metricType = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('TYPE_UNSPECIFIED', 'COUNTER', 'GAUGE') },
  { weight: 1, arbitrary: fc.constantFrom('HISTOGRAM', 'counter', '') },
);

function metric(shape: Shape): Arbitrary<Json> {
  const labels = shape.small
    ? fc.array(label(shape), { maxLength: 2 })
    : fc.oneof(
        { weight: 6, arbitrary: fc.array(label(shape), { maxLength: 3 }) },
        // SPEC §4: more than 16 labels drops the metric, never the frame.
        { weight: 1, arbitrary: fc.array(label({ fuzzy: false, small: true }), { minLength: 17, maxLength: 20 }) },
      );
  return object([
    required('name', metricName, shape.fuzzy),
    required('type', metricType, shape.fuzzy),
    required('value', fc.double({ noNaN: true, noDefaultInfinity: true }), shape.fuzzy),
    opt('labels', field(labels, shape.fuzzy)),
  ]);
}

function stats(shape: Shape): Arbitrary<Json> {
  const { fuzzy } = shape;
  return object([
    opt('connectionsByProto', field(protoMap(fuzzy), fuzzy)),
    ...INT_FIELDS.map((f) => opt(f, field(intValue, fuzzy))),
    opt('connectionMedianLatencyMs', field(latencyValue, fuzzy)),
    opt('metrics', field(fc.array(metric(shape), { maxLength: shape.small ? 2 : 3 }), fuzzy)),
    fuzzy ? protoMember : noMember,
  ]);
}

export function statsParams(shape: Shape): Arbitrary<Json | undefined> {
  const withStats = object([stats(shape).map((s) => ['stats', s] as const), shape.fuzzy ? protoMember : noMember]);
  if (!shape.fuzzy) {
    return fc.oneof(
      { weight: 8, arbitrary: withStats },
      { weight: 1, arbitrary: fc.constantFrom(undefined, new Obj([])) },
    );
  }
  return fc.oneof(
    { weight: 8, arbitrary: withStats },
    { weight: 1, arbitrary: fc.constantFrom(undefined, new Obj([]), new Obj([['stats', null]])) },
    { weight: 2, arbitrary: junk },
  );
}
