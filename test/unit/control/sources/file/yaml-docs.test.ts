/** Multi-document YAML with line positions (src/control/sources/file/yaml-docs.ts): what file errors point at. */
import { describe, expect, it } from 'vitest';
import { parseYamlDocs, YamlSyntaxError } from '../../../../../src/control/sources/file/yaml-docs.ts';

describe('parseYamlDocs', () => {
  it('returns each non-empty document with its first line, and locates a field path (or its closest parent)', () => {
    const docs = parseYamlDocs('a: 1\n---\n---\nspec:\n  rules:\n    - name: x\n      port: 8\n', 'r.yaml');
    expect(docs.map((d) => d.value)).toEqual([{ a: 1 }, { spec: { rules: [{ name: 'x', port: 8 }] } }]);
    expect(docs.map((d) => d.line)).toEqual([1, 4]);
    expect(docs[1]!.locate(['spec', 'rules', 0, 'port'])).toBe(7);
    expect(docs[1]!.locate(['spec', 'rules', 0, 'missing', 'deeper'])).toBe(6);
    expect(docs[1]!.locate([])).toBe(4);
  });

  it('an empty file is no documents', () => {
    expect(parseYamlDocs('', 'e.yaml')).toEqual([]);
    expect(parseYamlDocs('# only a comment\n', 'e.yaml')).toEqual([]);
  });

  it('a syntax error or a duplicate key names the file and the line', () => {
    const bad = () => parseYamlDocs('a: 1\nb: [1, 2\n', 'bad.yaml');
    expect(bad).toThrow(YamlSyntaxError);
    expect(bad).toThrow(/^bad\.yaml:\d+: /);
    try {
      parseYamlDocs('a: 1\nb: 2\na: 3\n', 'dup.yaml');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(YamlSyntaxError);
      expect((err as YamlSyntaxError).file).toBe('dup.yaml');
      expect((err as YamlSyntaxError).line).toBe(3);
    }
  });

  it('refuses an alias bomb instead of expanding it', () => {
    let text = 'a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n';
    for (let i = 1; i < 12; i++)
      text += `a${i}: &a${i} [${Array(10)
        .fill(`*a${i - 1}`)
        .join(', ')}]\n`;
    expect(() => parseYamlDocs(text, 'bomb.yaml')).toThrow();
  });
});
