/**
 * A small WHATWG `Headers` for the supervisor. Node's own `Headers` is a lazy global whose first
 * use loads Node's whole internal undici (fetch, WebSocket, proxy agents): ~35 ms on a host and
 * ~0.4 s of a sandbox VM's start under TCG, paid only because connect-es builds its request and
 * trailer metadata with `new Headers()`. The supervisor never uses fetch, so it installs this
 * class instead (`installLightHeaders`) before its first RPC. Same observable behaviour for what
 * connect-es does: case-insensitive names, validation, `append` joining with ", ", sorted
 * iteration, `Set-Cookie` kept apart (`getSetCookie`).
 */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FORBIDDEN_IN_VALUE = /[\0\r\n]/;
const SURROUNDING_WHITESPACE = /^[\t\n\r ]+|[\t\n\r ]+$/g;

type HeadersInitLike =
  | Iterable<readonly [string, string]>
  | Record<string, string>
  | { forEach(callback: (value: string, name: string) => void): void };

export class LightHeaders {
  private readonly fields = new Map<string, string>();
  private readonly cookies: string[] = [];

  constructor(init?: HeadersInitLike) {
    if (init === undefined || init === null) return;
    if (init instanceof LightHeaders) {
      for (const [name, value] of init.fields) this.fields.set(name, value);
      this.cookies.push(...init.cookies);
    } else if (typeof (init as Iterable<unknown>)[Symbol.iterator] === "function") {
      for (const pair of init as Iterable<readonly [string, string]>) {
        if (pair.length !== 2) throw new TypeError("Headers: each header pair needs a name and a value");
        this.append(pair[0], pair[1]);
      }
    } else if (typeof init === "object") {
      for (const name of Object.keys(init)) this.append(name, (init as Record<string, string>)[name]!);
    } else {
      throw new TypeError("Headers: init must be a headers object, a list of pairs or a record");
    }
  }

  append(name: string, value: string): void {
    const key = checkedName(name);
    const normalized = checkedValue(value);
    if (key === "set-cookie") {
      this.cookies.push(normalized);
      return;
    }
    const existing = this.fields.get(key);
    this.fields.set(key, existing === undefined ? normalized : `${existing}, ${normalized}`);
  }

  set(name: string, value: string): void {
    const key = checkedName(name);
    const normalized = checkedValue(value);
    if (key === "set-cookie") {
      this.cookies.length = 0;
      this.cookies.push(normalized);
      return;
    }
    this.fields.set(key, normalized);
  }

  get(name: string): string | null {
    const key = checkedName(name);
    if (key === "set-cookie") return this.cookies.length === 0 ? null : this.cookies.join(", ");
    return this.fields.get(key) ?? null;
  }

  has(name: string): boolean {
    const key = checkedName(name);
    return key === "set-cookie" ? this.cookies.length > 0 : this.fields.has(key);
  }

  delete(name: string): void {
    const key = checkedName(name);
    if (key === "set-cookie") this.cookies.length = 0;
    else this.fields.delete(key);
  }

  getSetCookie(): string[] {
    return [...this.cookies];
  }

  forEach(callback: (value: string, name: string, headers: LightHeaders) => void, thisArg?: unknown): void {
    for (const [name, value] of this.entries()) callback.call(thisArg, value, name, this);
  }

  *entries(): IterableIterator<[string, string]> {
    const names = [...this.fields.keys()];
    if (this.cookies.length > 0) names.push("set-cookie");
    for (const name of names.sort()) {
      if (name === "set-cookie") for (const cookie of this.cookies) yield [name, cookie];
      else yield [name, this.fields.get(name)!];
    }
  }

  *keys(): IterableIterator<string> {
    for (const [name] of this.entries()) yield name;
  }

  *values(): IterableIterator<string> {
    for (const [, value] of this.entries()) yield value;
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }

  get [Symbol.toStringTag](): string {
    return "Headers";
  }
}

function checkedName(name: string): string {
  const text = String(name);
  if (!TOKEN.test(text)) throw new TypeError(`Headers: invalid header name "${text}"`);
  return text.toLowerCase();
}

function checkedValue(value: string): string {
  const text = String(value).replace(SURROUNDING_WHITESPACE, "");
  if (FORBIDDEN_IN_VALUE.test(text)) throw new TypeError("Headers: invalid header value");
  return text;
}

/**
 * Makes `globalThis.Headers` the light class, without ever reading Node's lazy global (reading
 * it is what loads undici). Assigning goes through Node's lazy-property setter, which just
 * replaces the property.
 */
export function installLightHeaders(target: typeof globalThis = globalThis): void {
  (target as { Headers: unknown }).Headers = LightHeaders;
}
