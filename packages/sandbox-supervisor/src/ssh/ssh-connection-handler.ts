import { emitOcsf } from "@openshell/core";
import type { AuthContext, Connection, ServerChannel, Session, TcpipRequestInfo } from "ssh2";
import { DirectTcpipForwarder } from "./direct-tcpip-forwarder.js";
import { SessionChannelHandler } from "./session-channel-handler.js";
import type { SshServerContext } from "./ssh-context.js";

const ACCEPTED_AUTH_METHODS = ["none", "password", "publickey"] as const;

/**
 * One client connection. Authentication accepts none, password and publickey without checking
 * anything: only root can reach the socket, and the gateway authenticated the user before it
 * bridged the connection here.
 */
export class SshConnectionHandler {
  private readonly sessions = new Set<SessionChannelHandler>();
  private readonly forwarder: DirectTcpipForwarder;

  constructor(
    private readonly client: Connection,
    context: SshServerContext,
    readonly id: number,
  ) {
    this.forwarder = new DirectTcpipForwarder(context, id);
    client.on("authentication", (auth: AuthContext) => {
      if ((ACCEPTED_AUTH_METHODS as readonly string[]).includes(auth.method)) auth.accept();
      else auth.reject([...ACCEPTED_AUTH_METHODS]);
    });
    client.on("ready", () => context.logger.debug({ connection_id: id }, "ssh client authenticated"));
    client.on("session", (accept: () => Session) => {
      const session = accept();
      const handler = new SessionChannelHandler(session, context, id);
      this.sessions.add(handler);
      session.once("close", () => void handler.dispose().then(() => this.sessions.delete(handler)));
    });
    client.on(
      "tcpip",
      (accept: () => ServerChannel | undefined, reject: () => void, info: TcpipRequestInfo) =>
        this.forwarder.handle(accept, reject, info),
    );
    client.on("error", (error: Error & { level?: string }) => {
      emitOcsf(context.logger, {
        class: "SSH",
        activity: "FAIL",
        severity: "LOW",
        message: `SSH connection failed: ${error.message}`,
        fields: { connection_id: id, level: error.level },
      });
    });
    client.on("close", () => {
      void this.dispose();
      emitOcsf(context.logger, {
        class: "SSH",
        activity: "CLOSE",
        message: "SSH connection closed",
        fields: { connection_id: id },
      });
    });
  }

  /** Hangs up every child of this connection; settles once they are all gone. */
  async dispose(): Promise<void> {
    this.forwarder.dispose();
    const sessions = [...this.sessions];
    this.sessions.clear();
    await Promise.all(sessions.map((session) => session.dispose()));
  }

  /** Ends the children, then sends the client a disconnect. */
  async close(): Promise<void> {
    await this.dispose();
    this.client.end();
  }
}
