// ProxyCommand for the baseline: pipes stdin/stdout straight to a Unix socket (what socat would do).
import net from "node:net";

const socket = net.connect(process.argv[2]);
socket.setNoDelay?.(true);
process.stdin.pipe(socket);
socket.pipe(process.stdout);
socket.on("close", () => process.exit(0));
socket.on("error", (error) => {
  process.stderr.write(`${error.message}\n`);
  process.exit(1);
});
