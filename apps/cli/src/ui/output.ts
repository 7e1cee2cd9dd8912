import type { Writable } from "node:stream";
import { terminalSafe } from "./terminal-safe.js";

export type OutputFormat = "text" | "json";

export interface Progress {
  update(text: string): void;
  /** Ends the line; `text` replaces the last status (e.g. "✓ Ready"). */
  done(text?: string): void;
}

const SPINNER = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/**
 * Everything the CLI prints goes through here: results on stdout, messages and progress on stderr,
 * colours and spinners only on a terminal (and never with NO_COLOR or TERM=dumb).
 */
export class Output {
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly format: OutputFormat;
  readonly interactive: boolean;
  readonly color: boolean;

  constructor(options: {
    stdout?: Writable & { isTTY?: boolean };
    stderr?: Writable & { isTTY?: boolean };
    format?: OutputFormat;
    env?: NodeJS.ProcessEnv;
  }) {
    const env = options.env ?? process.env;
    const stderr = options.stderr ?? process.stderr;
    this.stdout = options.stdout ?? process.stdout;
    this.stderr = stderr;
    this.format = options.format ?? "text";
    this.interactive = Boolean((stderr as { isTTY?: boolean }).isTTY) && env.TERM !== "dumb";
    this.color = this.interactive && !env.NO_COLOR;
  }

  /** A result line (stdout). */
  print(text = ""): void {
    this.stdout.write(`${text}\n`);
  }

  json(value: unknown): void {
    this.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** A message for the human (stderr), so stdout stays parseable. */
  note(text: string): void {
    this.stderr.write(`${text}\n`);
  }

  success(text: string): void {
    this.note(`${this.paint("32", "✓")} ${text}`);
  }

  info(text: string): void {
    this.note(`${this.paint("36", "ℹ")} ${text}`);
  }

  warn(text: string): void {
    this.note(`${this.paint("33", "!")} ${text}`);
  }

  error(text: string): void {
    this.note(`${this.paint("31", "✗")} ${text}`);
  }

  dim(text: string): string {
    return this.paint("2", text);
  }

  bold(text: string): string {
    return this.paint("1", text);
  }

  paint(code: string, text: string): string {
    return this.color ? `\u001b[${code}m${text}\u001b[0m` : text;
  }

  /** A spinner on a terminal; elsewhere each distinct status is printed once on its own line. */
  progress(initial: string): Progress {
    if (!this.interactive) {
      let last = "";
      const line = (text: string) => {
        if (text !== last) this.note(`  ${text}`);
        last = text;
      };
      line(initial);
      return { update: line, done: (text) => text && line(text) };
    }
    let text = initial;
    let frame = 0;
    const render = () => {
      this.stderr.write(`\r\u001b[2K${this.paint("36", SPINNER[frame % SPINNER.length] ?? "")} ${text}`);
      frame += 1;
    };
    render();
    const timer = setInterval(render, 80);
    timer.unref();
    return {
      update: (next) => {
        text = next;
        render();
      },
      done: (final) => {
        clearInterval(timer);
        this.stderr.write("\r\u001b[2K");
        if (final) this.note(final);
      },
    };
  }

  /** Left-aligned columns, header in bold on a terminal; cells are data, printed terminal-safe. */
  table(headers: string[], rawRows: string[][]): void {
    const rows = rawRows.map((row) => row.map((cell) => terminalSafe(cell)));
    const widths = headers.map((header, column) =>
      Math.max(header.length, ...rows.map((row) => (row[column] ?? "").length)),
    );
    const format = (cells: string[]) =>
      cells
        .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
        .join("  ")
        .trimEnd();
    this.print(this.bold(format(headers)));
    for (const row of rows) this.print(format(row));
  }
}
