// Text into HTML and SVG: every value and label passes through esc(), so a string from a report
// (an error code, a statement's text) is shown as text and never read as markup.

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for an element's content or a quoted attribute value. */
export function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

/** A JSON value as a report shows it: a string as it is, null as a dash, anything else as JSON. */
export function display(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === null) return '–';
  return JSON.stringify(value);
}

/** A coordinate with one decimal: the same text for the same number on every machine. */
export function coord(x: number): string {
  return String(Math.round(x * 10) / 10);
}
