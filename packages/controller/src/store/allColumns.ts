/**
 * The columns of row type `R`, every one of them: a column left out is a compile error (the
 * argument then also needs a `missing` property naming it). For statements that list a table's
 * columns by hand, so a column added later cannot be silently left unwritten.
 *
 * ```ts
 * const COLUMNS = allColumns<AuditEventRow>()(['id', 'tenant_id', …]);
 * ```
 */
export function allColumns<R>() {
  return <const C extends readonly (keyof R)[]>(
    columns: C & ([Exclude<keyof R, C[number]>] extends [never] ? unknown : { missing: Exclude<keyof R, C[number]> }),
  ): C => columns;
}
