// HTTPS with a private certificate authority. Node's global fetch takes no CA per request
// (only an undici dispatcher, which is not importable without installing undici, or
// NODE_EXTRA_CA_CERTS, read once when the process starts), so a Client given `caFile` makes
// its requests through node:https with that CA instead. The server's certificate and host
// name are verified as fetch would; only the set of trusted authorities changes.

import { readFileSync } from "node:fs";
import { request } from "node:https";

/**
 * A fetch, as far as the Client uses one (method, headers, a string body, signal; an answer
 * with `status`, `ok`, `text()` and `body` as an async iterable of bytes), that trusts the
 * authorities in the PEM file `caFile` instead of the system's for https:// URLs. Reads the
 * file at once, so a missing one fails here. Other URLs go to the global fetch.
 */
export function fetchTrusting(caFile) {
  const ca = readFileSync(caFile);
  return (url, init = {}) => {
    const target = new URL(url);
    if (target.protocol !== "https:") return globalThis.fetch(url, init);
    return new Promise((resolve, reject) => {
      const options = { method: init.method ?? "GET", headers: init.headers ?? {}, ca, signal: init.signal };
      const req = request(target, options, (res) => {
        resolve({
          status: res.statusCode,
          ok: res.statusCode >= 200 && res.statusCode < 300,
          body: res,
          async text() {
            const chunks = [];
            for await (const chunk of res) chunks.push(chunk);
            return Buffer.concat(chunks).toString("utf8");
          },
        });
      });
      req.on("error", reject);
      if (init.body !== undefined) req.write(init.body);
      req.end();
    });
  };
}
