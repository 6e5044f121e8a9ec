// The command line both server scripts take: --port N [--sqlite FILE].
import { parseArgs } from "node:util";

export function serverArgs() {
  const { values } = parseArgs({ options: { port: { type: "string" }, sqlite: { type: "string" } } });
  const port = Number.parseInt(values.port ?? "", 10);
  if (!(port > 0)) {
    throw new Error("usage: node SERVER.mjs --port N [--sqlite FILE]");
  }
  return { host: "127.0.0.1", port, sqlite: values.sqlite };
}
