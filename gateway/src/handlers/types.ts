// A handler is a function of (session, params): it validates, authorizes against the session and
// hands the write to a store writer; it answers with a HandlerOutcome (outcome.ts).
import type { Session } from '../session/session.js';
import type { HandlerOutcome } from './outcome.js';

export type Handler = (session: Session, params: unknown) => HandlerOutcome | Promise<HandlerOutcome>;
