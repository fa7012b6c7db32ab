// Maps a group-commit outcome to the frame's answer.
import { RpcError, RpcErrorMessage } from '@agentgate/shared';
import type { WriteOutcome } from '../store/batch-writer.js';
import type { HandlerOutcome } from './types.js';

const unavailable: HandlerOutcome = {
  error: { code: RpcError.Unavailable, message: RpcErrorMessage[RpcError.Unavailable] },
};

export function writeOutcome(outcome: Exclude<WriteOutcome, 'ok'>, correlationId?: string): HandlerOutcome {
  if (outcome === 'unavailable') return unavailable;
  return {
    error: {
      code: RpcError.InternalError,
      message: `${RpcErrorMessage[RpcError.InternalError]} (correlation id ${correlationId ?? 'unknown'})`,
    },
  };
}
