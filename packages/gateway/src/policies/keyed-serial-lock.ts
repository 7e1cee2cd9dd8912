import { SerialLock } from "@openshell/core";

/**
 * One `SerialLock` per key (a sandbox id): sections with the same key run one at a time in arrival
 * order, different keys run concurrently. A key's lock is dropped once nothing waits on it.
 */
export class KeyedSerialLock {
  private readonly locks = new Map<string, { lock: SerialLock; holders: number }>();

  async run<T>(key: string, section: () => Promise<T>): Promise<T> {
    let entry = this.locks.get(key);
    if (!entry) {
      entry = { lock: new SerialLock(), holders: 0 };
      this.locks.set(key, entry);
    }
    entry.holders++;
    const held = entry;
    try {
      return await held.lock.run(section);
    } finally {
      held.holders--;
      if (held.holders === 0 && this.locks.get(key) === held) this.locks.delete(key);
    }
  }

  /** Keys with a section running or waiting (for tests). */
  get size(): number {
    return this.locks.size;
  }
}
