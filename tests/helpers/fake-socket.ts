// A stand-in for the `ws` WebSocket under an AgentConnection (the AgentSocket interface): it records
// what the connection sent and how it closed, and lets a test play the peer (answer the close
// handshake or not, stop reading so answers pile up).
import { EventEmitter } from 'node:events';
import { WebSocket } from 'ws';
import type { AgentSocket } from '../../gateway/src/rpc/connection.ts';

export class FakeSocket extends EventEmitter implements AgentSocket {
  readyState: number = WebSocket.OPEN;
  bufferedAmount = 0;
  isPaused = false;
  /** Every text sent, parsed. */
  readonly sent: unknown[] = [];
  pings = 0;
  terminated = false;
  /** The code and reason of our close frame, once sent. */
  closeFrame: { code: number; reason: string } | undefined;
  /** Whether the peer answers a close frame at once (the handshake completes). */
  peerAnswersClose = true;

  send(text: string): void {
    this.sent.push(JSON.parse(text));
  }

  close(code: number, reason: string): void {
    this.closeFrame = { code, reason };
    this.readyState = WebSocket.CLOSING;
    // The peer's close reply is only read while the socket is read (a paused one never sees it).
    if (this.peerAnswersClose && !this.isPaused) this.finishClose();
  }

  terminate(): void {
    this.terminated = true;
    this.finishClose();
  }

  pause(): void {
    this.isPaused = true;
  }

  resume(): void {
    this.isPaused = false;
    if (this.readyState === WebSocket.CLOSING && this.peerAnswersClose) this.finishClose();
  }

  ping(): void {
    this.pings++;
  }

  /** The peer completes the close handshake (or the socket is cut): 'close' fires once. */
  finishClose(): void {
    if (this.readyState === WebSocket.CLOSED) return;
    this.readyState = WebSocket.CLOSED;
    this.emit('close');
  }
}
