/**
 * `lineDiff` cut down to the changed lines and `context` unchanged lines around each change; "  …"
 * stands for the unchanged lines left out.
 */
export function lineDiffHunks(before: string, after: string, context = 3): string[] {
  const lines = lineDiff(before, after);
  const changed = lines.map((line) => !line.startsWith("  "));
  const keep = lines.map((_, i) =>
    changed.slice(Math.max(0, i - context), i + context + 1).some((isChange) => isChange),
  );
  const out: string[] = [];
  lines.forEach((line, i) => {
    if (keep[i]) out.push(line);
    else if (out.at(-1) !== "  …") out.push("  …");
  });
  return out;
}

/**
 * A line diff of two texts (longest common subsequence; policies are small): unchanged lines
 * start with two spaces, removed ones with "- ", added ones with "+ ". Empty when they are equal.
 */
function lineDiff(before: string, after: string): string[] {
  const a = splitLines(before);
  const b = splitLines(after);
  if (a.length === b.length && a.every((line, i) => line === b[i])) return [];
  // common[i][j]: length of the longest common subsequence of a[i..] and b[j..].
  const common: number[][] = Array.from({ length: a.length + 1 }, () =>
    new Array<number>(b.length + 1).fill(0),
  );
  for (let i = a.length - 1; i >= 0; i--)
    for (let j = b.length - 1; j >= 0; j--)
      (common[i] as number[])[j] =
        a[i] === b[j]
          ? ((common[i + 1] as number[])[j + 1] as number) + 1
          : Math.max((common[i + 1] as number[])[j] as number, (common[i] as number[])[j + 1] as number);
  const lines: string[] = [];
  let i = 0;
  let j = 0;
  const at = (x: number, y: number) => (common[x] as number[])[y] as number;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      lines.push(`  ${a[i]}`);
      i++;
      j++;
    } else if (i < a.length && (j === b.length || at(i + 1, j) >= at(i, j + 1))) {
      lines.push(`- ${a[i]}`);
      i++;
    } else {
      lines.push(`+ ${b[j]}`);
      j++;
    }
  }
  return lines;
}

function splitLines(text: string): string[] {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines;
}
