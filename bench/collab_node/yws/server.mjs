// @y/websocket-server, the y-websocket reference backend, run as its own `y-websocket` command runs it:
// its server module reads HOST and PORT, keeps documents in memory, takes the document's name from the
// URL path, and answers every plain HTTP request (so GET /healthz too) with 200.
// Node's default SIGINT/SIGTERM handling ends it.
import { serverArgs } from "../args.mjs";

const { host, port } = serverArgs();
process.env.HOST = host;
process.env.PORT = String(port);
await import("@y/websocket-server/server");
