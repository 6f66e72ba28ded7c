/**
 * The row as every database can hold its text: a NUL and a lone surrogate become U+FFFD, as
 * bytes that are not UTF-8 already do in an exec's output preview. PostgreSQL refuses a NUL in
 * text, and a lone surrogate in a JSON parameter (the exec-log upsert and audit insert bind their
 * rows as JSON): such a row failed its exec, or was dropped from the audit trail. Copies the row
 * only when a column needs it.
 */
export function storableText<R extends object>(row: R, columns: readonly (keyof R)[]): R {
  let out: R | undefined;
  for (const column of columns) {
    const v = row[column];
    if (typeof v !== 'string' || (v.isWellFormed() && !v.includes('\0'))) continue;
    out ??= { ...row };
    (out as Record<keyof R, unknown>)[column] = v.toWellFormed().replaceAll('\0', '\uFFFD');
  }
  return out ?? row;
}
