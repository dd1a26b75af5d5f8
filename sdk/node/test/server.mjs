// The real server for the suites: `workerpool serve` (binary from WORKERPOOL_BIN) on a free
// loopback port with a TOML configuration, and the pieces of such a configuration.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

import { Client } from "../src/index.js";

export const BIN = process.env.WORKERPOOL_BIN;

const SERVER_ENV_DROP = [
  "WORKERPOOL_API_TOKEN", "MAX_WORKERS", "WORKER_POOL_SIZE", "LOG_FORMAT", "REDIS_URL",
  "REDIS_HOST", "REDIS_PASSWORD", "INSTANCE_ID", "WORKERPOOL_PROTECT_READS",
  "WORKERPOOL_READ_TOKEN", "WORKERPOOL_CA_FILE",
];

export function tomlType(name, command, keys = {}) {
  const table = { max_concurrent: 1, max_retries: 0, retry_delay_ms: 20, timeout_ms: 20000, queue_size: 50, ...keys };
  const lines = [`[types.${name}]`, `command = [${command.map((c) => JSON.stringify(String(c))).join(", ")}]`];
  for (const [k, v] of Object.entries(table)) lines.push(`${k} = ${JSON.stringify(v)}`);
  return lines.join("\n") + "\n";
}

export function exited(proc, limitMs) {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve({ code: proc.exitCode, signal: proc.signalCode });
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), limitMs);
    proc.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}

/** `workerpool serve --bind 127.0.0.1:0 --config <toml>`; its stderr is kept. */
export class Server {
  static async start(config, clientOptions = {}) {
    const server = new Server();
    server.dir = mkdtempSync(join(tmpdir(), "wp-sdk-node-"));
    const configPath = join(server.dir, "config.toml");
    writeFileSync(configPath, config);
    const env = { ...process.env, RUST_LOG: "info" };
    for (const key of SERVER_ENV_DROP) delete env[key];
    server.proc = spawn(BIN, ["serve", "--bind", "127.0.0.1:0", "--config", configPath], {
      stdio: ["ignore", "ignore", "pipe"],
      env,
    });
    server.log = [];
    const found = new Promise((resolve) => {
      createInterface({ input: server.proc.stderr }).on("line", (line) => {
        server.log.push(line);
        const at = line.indexOf("listening on ");
        if (at >= 0) resolve(line.slice(at + "listening on ".length).split('"')[0].trim());
      });
      server.proc.once("exit", () => resolve(null));
      setTimeout(() => resolve(null), 30_000).unref();
    });
    server.base = await found;
    if (!server.base) {
      await server.stop();
      throw new Error("the server did not start:\n" + server.log.join("\n"));
    }
    server.client = new Client(server.base, { timeout: 60_000, ...clientOptions });
    return server;
  }

  async stop() {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill("SIGTERM");
      if (!(await exited(this.proc, 15_000))) {
        this.proc.kill("SIGKILL");
        await exited(this.proc, 5_000);
      }
    }
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  async workers(type) {
    return (await this.client.status()).workers.filter((w) => w.task_type === type);
  }
}
