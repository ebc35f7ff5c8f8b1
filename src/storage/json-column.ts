/** Read a nullable JSON text column. */
export function fromJsonColumn<T>(text: string | null): T | null {
  return text === null ? null : (JSON.parse(text) as T);
}

/** Write a nullable JSON text column (`undefined` and `null` are stored as SQL NULL). */
export function toJsonColumn(value: unknown): string | null {
  return value === null || value === undefined ? null : JSON.stringify(value);
}
