// ProxyCommand for OpenSSH: carries the SSH stream between stdin/stdout and a Unix socket.
import net from "node:net";

const socketPath = process.argv[2];
if (!socketPath) {
  process.stderr.write("usage: ssh-unix-proxy.mjs SOCKET\n");
  process.exit(2);
}
const socket = net.connect(socketPath);
socket.on("error", (error) => {
  process.stderr.write(`ssh-unix-proxy: ${error.message}\n`);
  process.exit(255);
});
socket.on("close", () => process.exit(0));
process.stdin.pipe(socket);
socket.pipe(process.stdout);
