// @workerpool/worker: the worker side of workerpool's JSON-lines protocol, and a REST client.
export { Worker, Context, Retryable, Fatal } from "./worker.js";
export { Client, ClientError } from "./client.js";
