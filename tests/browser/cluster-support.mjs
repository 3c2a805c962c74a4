// What the cluster browser test needs besides harness.mjs: a throwaway redis-server on loopback, and an entry
// proxy standing in for the load balancer in front of the nodes (a Kubernetes Service, a TCP balancer).

import { spawn } from 'node:child_process';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

import { freeTcpPort, waitFor } from './harness.mjs';

/** `redis-server` on a free loopback port, no persistence (scripts/test.sh installs it). */
export class RedisServer {
  async start() {
    this.port = await freeTcpPort();
    this.url = `redis://127.0.0.1:${this.port}/0`;
    this.proc = spawn(
      'redis-server',
      ['--bind', '127.0.0.1', '--port', String(this.port), '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    const failed = new Promise((_, reject) =>
      this.proc.once('error', (err) =>
        reject(new Error(`cannot start redis-server (${err.message}): apt-get install -y redis-server`)),
      ),
    );
    const ready = waitFor(() => canConnect(this.port), {
      timeoutMs: 10000,
      intervalMs: 100,
      what: `redis-server on port ${this.port}`,
    });
    await Promise.race([ready, failed]);
    return this;
  }

  stop() {
    if (this.proc) this.proc.kill('SIGKILL');
  }
}

function canConnect(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/**
 * A TCP proxy on a free loopback port in front of `backends` (ports), as a load balancer would be:
 * signaling WebSockets (`GET /rtc`) go round-robin over the backends, everything else to the first one; a
 * backend that refuses the connection is skipped. `rtcConnections` counts the WebSockets per backend port.
 */
export class EntryProxy {
  constructor(backends) {
    this.backends = backends;
    this.next = 0;
    this.rtcConnections = new Map();
  }

  async start() {
    this.port = await freeTcpPort();
    this.server = net.createServer((client) => this._accept(client));
    await new Promise((resolve) => this.server.listen(this.port, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${this.port}`;
    return this;
  }

  _accept(client) {
    client.once('data', async (first) => {
      client.pause();
      const isRtc = first.toString('latin1', 0, 16).startsWith('GET /rtc');
      let order = this.backends;
      if (isRtc) {
        const start = this.next++ % this.backends.length;
        order = [...this.backends.slice(start), ...this.backends.slice(0, start)];
      }
      for (const port of order) {
        const upstream = await connect(port);
        if (!upstream) continue;
        if (isRtc) this.rtcConnections.set(port, (this.rtcConnections.get(port) || 0) + 1);
        upstream.write(first);
        client.pipe(upstream).on('error', () => {});
        upstream.pipe(client).on('error', () => {});
        client.on('error', () => upstream.destroy());
        upstream.on('error', () => client.destroy());
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
        client.resume();
        return;
      }
      client.destroy(); // no backend alive
    });
    client.on('error', () => {});
  }

  async stop() {
    if (!this.server) return;
    this.server.close();
    await sleep(0);
  }
}

function connect(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.once('connect', () => {
      sock.removeAllListeners('error');
      resolve(sock);
    });
    sock.once('error', () => resolve(null));
  });
}
