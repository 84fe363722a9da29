/**
 * Multi-document YAML with positions: each document's plain value plus a function that maps a field path to the
 * line it stands on, so errors read `routes.yaml:14: spec.rules[0].backends: …`.
 */
import { isNode, LineCounter, parseAllDocuments } from 'yaml';
import type { FieldPath } from '../../../api/validate.ts';

export interface YamlDoc {
  value: unknown;
  /** 1-based line where the document starts. */
  line: number;
  /** 1-based line of the node at this path, or of its closest existing parent. */
  locate(path: FieldPath): number;
}

export class YamlSyntaxError extends Error {
  readonly file: string;
  readonly line: number;
  constructor(file: string, line: number, message: string) {
    super(`${file}:${line}: ${message}`);
    this.file = file;
    this.line = line;
  }
}

export function parseYamlDocs(text: string, file: string): YamlDoc[] {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (!Array.isArray(docs)) {
    // An empty stream: a YAML "EmptyStream" object.
    return [];
  }
  const out: YamlDoc[] = [];
  for (const doc of docs) {
    const err = doc.errors[0];
    if (err) {
      const line = lineCounter.linePos(err.pos[0]).line;
      throw new YamlSyntaxError(file, line, err.message.split('\n')[0] ?? err.message);
    }
    if (doc.contents === null) continue;
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    // An empty document (`---` right after `---`, or only comments) is nothing, as kubectl reads it.
    if (value === null || value === undefined) continue;
    const start = lineCounter.linePos(doc.contents.range?.[0] ?? 0).line;
    out.push({
      value,
      line: start,
      locate(path: FieldPath): number {
        for (let n = path.length; n >= 0; n--) {
          const node = doc.getIn(path.slice(0, n), true);
          if (isNode(node) && node.range) return lineCounter.linePos(node.range[0]).line;
        }
        return start;
      },
    });
  }
  return out;
}
