// ProxyCommand for the ceiling row: stdin/stdout to 127.0.0.1:<port> over TCP.
import net from "node:net";

const socket = net.connect(Number(process.argv[2]), "127.0.0.1");
socket.setNoDelay(true);
process.stdin.pipe(socket);
socket.pipe(process.stdout);
socket.on("close", () => process.exit(0));
socket.on("error", (error) => {
  process.stderr.write(`${error.message}\n`);
  process.exit(1);
});
