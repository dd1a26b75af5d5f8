// The Client over HTTPS: a server with a certificate from a private authority (made by
// tests/sdk_node.rs, which names its directory in WORKERPOOL_TEST_TLS_DIR: ca.pem, server.pem,
// server.key) is trusted through `caFile`, WORKERPOOL_CA_FILE or Node's own
// NODE_EXTRA_CA_CERTS, and refused when the client trusts another authority
// (WORKERPOOL_TEST_OTHER_CA) or only the system's.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";

import { Client } from "../src/index.js";
import { BIN, Server, tomlType } from "./server.mjs";

const TLS_DIR = process.env.WORKERPOOL_TEST_TLS_DIR;
const OTHER_CA = process.env.WORKERPOOL_TEST_OTHER_CA;
const skip = !BIN ? "WORKERPOOL_BIN is not set (tests/sdk_node.rs sets it)"
  : !TLS_DIR || !OTHER_CA ? "WORKERPOOL_TEST_TLS_DIR is not set (tests/sdk_node.rs sets it)" : false;
const T = { timeout: 60_000 };

/** Whether a rejection is Node's refusal of an untrusted certificate. */
function untrusted(error) {
  const code = error?.code ?? error?.cause?.code;
  return typeof code === "string" && /CERT|SIGNATURE/.test(code);
}

describe("over HTTPS", { skip }, () => {
  let server;
  const ca = TLS_DIR && join(TLS_DIR, "ca.pem");

  before(async () => {
    const config =
      `[server]\ntls_cert_file = ${JSON.stringify(join(TLS_DIR, "server.pem"))}\n` +
      `tls_key_file = ${JSON.stringify(join(TLS_DIR, "server.key"))}\n\n` +
      "[pool]\nmax_workers = 2\nmin_workers = 0\ngraceful_shutdown_timeout_ms = 2000\n\n" +
      tomlType("text_processing", [BIN, "demo-worker"]);
    server = await Server.start(config, { caFile: ca });
  });

  after(async () => {
    if (server) await server.stop();
  });

  test("a client trusting the private authority runs tasks and follows their events", T, async () => {
    assert.match(server.base, /^https:\/\//);
    const client = new Client(server.base, { caFile: ca, timeout: 30_000 });
    const record = await client.execute("text_processing", { op: "echo", n: 1 });
    assert.equal(record.status, "completed");
    const id = await client.submit("text_processing", { op: "progress", steps: 2, step_ms: 50 });
    const events = [];
    for await (const e of client.watch(id, { timeout: 30_000 })) events.push(e);
    assert.equal(events.at(-1).event, "result");
    assert.equal(events.at(-1).data.status, "completed");
  });

  test("WORKERPOOL_CA_FILE is the default authority file", T, async () => {
    process.env.WORKERPOOL_CA_FILE = ca;
    try {
      const stats = await new Client(server.base, { timeout: 30_000 }).stats();
      assert.ok(stats.by_type);
    } finally {
      delete process.env.WORKERPOOL_CA_FILE;
    }
  });

  test("an untrusted server is refused", T, async () => {
    await assert.rejects(new Client(server.base, { caFile: OTHER_CA, timeout: 30_000 }).stats(), untrusted);
    // The global fetch, with the system's authorities only.
    await assert.rejects(new Client(server.base, { timeout: 30_000 }).stats(), untrusted);
    // A stream is not retried against a server that cannot be trusted.
    const watch = new Client(server.base, { caFile: OTHER_CA, timeout: 30_000 }).watch("any-task");
    await assert.rejects(watch.next(), untrusted);
  });

  test("without caFile, Node's NODE_EXTRA_CA_CERTS makes the global fetch trust it", T, async () => {
    const script =
      "const r = await fetch(process.argv[1] + '/api/workers/stats'); process.exit(r.status === 200 ? 0 : 1);";
    const run = (env) =>
      promisify(execFile)(process.execPath, ["--input-type=module", "-e", script, server.base], {
        env: { ...process.env, ...env },
        timeout: 30_000,
      });
    await run({ NODE_EXTRA_CA_CERTS: ca });
    await assert.rejects(run({ NODE_EXTRA_CA_CERTS: OTHER_CA }));
  });

  test("a missing caFile fails at once", () => {
    assert.throws(() => new Client("https://127.0.0.1:1", { caFile: "/nonexistent/ca.pem" }), /ENOENT/);
  });
});
