// Protocol 5.3 counts cursor positions in Unicode code points; JavaScript strings count UTF-16 units.

export function codePointsToUtf16(text: string, codePoints: number): number {
  let units = 0;
  let seen = 0;
  for (const ch of text) {
    if (seen >= codePoints) break;
    units += ch.length;
    seen++;
  }
  return units;
}

export function utf16ToCodePoints(text: string, units: number): number {
  return [...text.slice(0, units)].length;
}
