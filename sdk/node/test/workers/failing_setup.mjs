// A worker whose setup throws: it must exit 1 after running its teardown, answering nothing.
//
// Usage: node failing_setup.mjs LOGFILE
import { appendFileSync } from "node:fs";

import { Worker } from "../../src/index.js";

// `node --test sdk/node/test/` also runs this file, with no arguments: nothing to do then.
if (!process.argv[2]) process.exit(0);

const worker = new Worker();
worker.setup(() => {
  throw new Error("no model file");
});
worker.teardown(() => appendFileSync(process.argv[2], `teardown ${process.pid}\n`));
worker.task(() => "never");
worker.run();
