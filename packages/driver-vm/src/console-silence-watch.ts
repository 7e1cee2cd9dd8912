import { fileSize } from "./vm-instance.js";

/**
 * Calls `onSilent` once when a VM's console log has not grown for `silentMs`: a booting guest
 * whose kernel or init stopped making progress (a hung boot prints nothing more, while a slow one
 * still prints its milestones). Polls the file's size; `stop` ends it.
 */
export class ConsoleSilenceWatch {
  private timer: NodeJS.Timeout | undefined;
  private lastSize: number;
  private lastChange = Date.now();

  constructor(
    private readonly consoleLog: string,
    readonly silentMs: number,
    private readonly onSilent: () => void,
  ) {
    this.lastSize = fileSize(this.consoleLog);
  }

  start(intervalMs = Math.min(2_000, Math.max(100, Math.floor(this.silentMs / 4)))): void {
    this.timer = setInterval(() => this.check(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private check(): void {
    const size = fileSize(this.consoleLog);
    if (size !== this.lastSize) {
      this.lastSize = size;
      this.lastChange = Date.now();
      return;
    }
    if (Date.now() - this.lastChange < this.silentMs) return;
    this.stop();
    this.onSilent();
  }
}
