// Plain byte forwarder for the relay benchmark's ceiling row: listens on 127.0.0.1:0, prints the
// port, and pipes every connection to `target` (host:port or a Unix socket path). No framing.
import net from "node:net";

const target = process.argv[2];
const server = net.createServer({ noDelay: true }, (client) => {
  const upstream = target.includes(":")
    ? net.connect(Number(target.split(":")[1]), target.split(":")[0])
    : net.connect(target);
  upstream.setNoDelay?.(true);
  client.pipe(upstream);
  upstream.pipe(client);
  const teardown = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on("error", teardown);
  upstream.on("error", teardown);
});
server.listen(0, "127.0.0.1", () => process.stdout.write(`${server.address().port}\n`));
