// Every open session, indexed by agent, workspace, owner and template, so that an identity change
// (refresh, NOTIFY, shutdown) reaches exactly the sessions it concerns.
import type { Subject } from '../domain.js';

export interface Indexed {
  readonly id: number;
  readonly subject: Subject;
}

type Index<S> = Map<string, Set<S>>;

function add<S>(index: Index<S>, key: string, s: S): void {
  let set = index.get(key);
  if (!set) {
    set = new Set();
    index.set(key, set);
  }
  set.add(s);
}

function remove<S>(index: Index<S>, key: string, s: S): void {
  const set = index.get(key);
  if (!set) return;
  set.delete(s);
  if (set.size === 0) index.delete(key);
}

export class SessionRegistry<S extends Indexed> {
  private readonly all = new Set<S>();
  private readonly keys = new Map<S, Subject>();
  readonly byAgent: Index<S> = new Map();
  readonly byWorkspace: Index<S> = new Map();
  readonly byOwner: Index<S> = new Map();
  readonly byTemplate: Index<S> = new Map();

  add(s: S): void {
    this.all.add(s);
    this.index(s);
  }

  /** Re-indexes a session whose subject changed (claim, template change). */
  reindex(s: S): void {
    if (!this.all.has(s)) return;
    this.unindex(s);
    this.index(s);
  }

  delete(s: S): void {
    if (!this.all.delete(s)) return;
    this.unindex(s);
  }

  get size(): number {
    return this.all.size;
  }

  values(): IterableIterator<S> {
    return this.all.values();
  }

  has(s: S): boolean {
    return this.all.has(s);
  }

  private index(s: S): void {
    const k = { ...s.subject };
    this.keys.set(s, k);
    add(this.byAgent, k.agentId, s);
    add(this.byWorkspace, k.workspaceId, s);
    add(this.byOwner, k.ownerId, s);
    add(this.byTemplate, k.templateId, s);
  }

  private unindex(s: S): void {
    const k = this.keys.get(s);
    if (!k) return;
    this.keys.delete(s);
    remove(this.byAgent, k.agentId, s);
    remove(this.byWorkspace, k.workspaceId, s);
    remove(this.byOwner, k.ownerId, s);
    remove(this.byTemplate, k.templateId, s);
  }
}
