// @hocuspocus/server with its defaults, documents in memory, or with --sqlite FILE stored through
// @hocuspocus/extension-sqlite. `quiet` drops the start banner (Hocuspocus has no telemetry and logs
// nothing without its Logger extension). Its default HTTP answer is 200 for every path, so GET /healthz
// works; it stops itself on SIGINT/SIGTERM (stopOnSignals).
import { Server } from "@hocuspocus/server";
import { SQLite } from "@hocuspocus/extension-sqlite";
import { serverArgs } from "../args.mjs";

const { host, port, sqlite } = serverArgs();
const server = new Server({
  address: host,
  port,
  quiet: true,
  extensions: sqlite ? [new SQLite({ database: sqlite })] : [],
});
await server.listen();
