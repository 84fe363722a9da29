/**
 * Route regular expressions (`RegularExpression` path, header, query and cookie matches) run in linear time.
 *
 * Node's regex engine backtracks: `(a+)+$` against 30 characters takes seconds. V8 also has a non-backtracking
 * engine (`--enable-experimental-regexp-engine`, flag `l`) that runs in time linear in the input for the syntax it
 * supports, and can take over a backtracking run that exceeds a backtrack budget
 * (`--enable-experimental-regexp-engine-on-excessive-backtracks`). This module switches both on for the process
 * at import — every process shape imports it before it compiles a route regex: the proxy workers, the single
 * process of `--workers 0`, the primary's compile and `edgegate validate` — and then:
 *
 * - admits only patterns the linear engine can run (`regexSyntaxError`): no backreferences, no lookaround, no
 *   inline flags, counted repetition up to 16, and none of the escapes that mean something else in RE2 (the
 *   syntax the CRD's CEL check and Gateway API implementations use) than in JavaScript;
 * - compiles a route regex for matching (`compileRouteRegex`) on the backtracking engine, which is the fast one
 *   for ordinary patterns, with V8 moving any run past 1,000 backtracks to the linear engine. Only patterns the
 *   linear engine can run are ever compiled, so that fallback always exists: a match costs at most the budget
 *   plus one linear pass.
 *
 * The flags are V8's, set with `v8.setFlagsFromString` before any route regex exists; `LINEAR_REGEX_ENGINE`
 * says whether the `l` flag took (it has on every Node 26 build). Without it, `compileRouteRegex` refuses every
 * pattern (fail closed): a gateway never runs a route regex on the backtracking engine alone.
 */
import { setFlagsFromString } from 'node:v8';

/** Backtracks a route regex may spend before V8 reruns it on the linear engine (V8's default: 50,000). */
export const BACKTRACKS_BEFORE_LINEAR = 1000;

/** Counted repetition the linear engine accepts (`x{16}`; nested counts multiply). */
export const MAX_REPETITION = 16;

function linearFlagWorks(): boolean {
  try {
    // biome-ignore lint/complexity/useRegexLiterals: a literal with the l flag is a syntax error until V8's flag is set
    new RegExp('', 'l');
    return true;
  } catch {
    return false;
  }
}

if (!linearFlagWorks()) setFlagsFromString('--enable-experimental-regexp-engine');
setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');
setFlagsFromString(`--regexp-backtracks-before-fallback=${BACKTRACKS_BEFORE_LINEAR}`);

/** Whether this process can check and run route regexes in linear time. */
export const LINEAR_REGEX_ENGINE = linearFlagWorks();

/** Escapes outside a class that mean the same in JavaScript (without the `u` flag) and RE2. */
const ESCAPES = new Set(['d', 'D', 'w', 'W', 's', 'S', 'b', 'B', 'n', 'r', 't', 'f', 'v', 'x', 'u']);
/** The same inside a class (`\b` and `\B` are not class escapes in RE2). */
const CLASS_ESCAPES = new Set(['d', 'D', 'w', 'W', 's', 'S', 'n', 'r', 't', 'f', 'v', 'x', 'u']);

function isAsciiLetter(c: string): boolean {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/**
 * Why a pattern cannot be a route regex, or undefined when it can: a syntax error, a construct the linear engine
 * cannot run or RE2 reads differently (named in the message), or what V8 refuses with the `l` flag.
 */
export function regexSyntaxError(pattern: string): string | undefined {
  const unsupported = unsupportedConstruct(pattern);
  try {
    new RegExp(pattern);
  } catch (err) {
    return unsupported ?? (err as Error).message.replace(/^Invalid regular expression: /, '');
  }
  if (unsupported !== undefined) return unsupported;
  if (!LINEAR_REGEX_ENGINE) return 'this Node.js has no linear-time regex engine (V8 flag "l")';
  try {
    new RegExp(`^(?:${pattern})$`, 'l');
  } catch {
    return `cannot run in linear time: counted repetition is limited to {${MAX_REPETITION}} (x{1,16}; nested counts multiply; x{17} can be written x{16}x)`;
  }
  return undefined;
}

/** The first construct of a pattern the linear engine cannot run or RE2 reads differently, named. */
function unsupportedConstruct(pattern: string): string | undefined {
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') {
      const n = pattern[i + 1] ?? '';
      i++;
      if (n >= '1' && n <= '9')
        return inClass
          ? `octal escape \\${n} in a character class is not supported (write \\x.. instead)`
          : `backreference \\${n} is not supported (it cannot run in linear time)`;
      if (n === 'k' && !inClass)
        return 'named backreference \\k<…> is not supported (it cannot run in linear time)';
      if (n === '0' && /[0-9]/.test(pattern[i + 1] ?? ''))
        return 'octal escape \\0.. is not supported (write \\x.. instead)';
      if (n === 'c') {
        if (!isAsciiLetter(pattern[i + 1] ?? '')) return 'escape \\c must be followed by a letter';
        i++;
        continue;
      }
      if (n === 'x' && !/^[0-9A-Fa-f]{2}$/.test(pattern.slice(i + 1, i + 3)))
        return 'escape \\x must be followed by two hex digits (\\x{…} is RE2 only)';
      if (n === 'u' && !/^[0-9A-Fa-f]{4}$/.test(pattern.slice(i + 1, i + 5)))
        return 'escape \\u must be followed by four hex digits';
      if (isAsciiLetter(n) && !(inClass ? CLASS_ESCAPES : ESCAPES).has(n))
        return `escape \\${n} is not supported (RE2 and JavaScript read it differently); write a character class instead`;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      else if (c === '[' && pattern[i + 1] === ':')
        return 'POSIX classes like [[:alpha:]] are not supported; write [A-Za-z] and the like';
      continue;
    }
    if (c === '[') {
      let j = i + 1;
      if (pattern[j] === '^') j++;
      if (pattern[j] === ']')
        return `"${pattern.slice(i, j + 1)}" is not supported (an empty class in JavaScript, a "]" in RE2); escape the "]"`;
      inClass = true;
      i = j - 1;
      continue;
    }
    if (c === '(' && pattern[i + 1] === '?') {
      const a = pattern[i + 2];
      const b = pattern[i + 3];
      if (a === ':') continue;
      if (a === '=' || a === '!') return `lookahead (?${a}…) is not supported (it cannot run in linear time)`;
      if (a === '<' && (b === '=' || b === '!'))
        return `lookbehind (?<${b}…) is not supported (it cannot run in linear time in RE2)`;
      if (a === '<') continue; // a named group
      return `group syntax "(?${a ?? ''}" is not supported (inline flags and modifiers cannot run in linear time)`;
    }
  }
  return undefined;
}

/**
 * The matcher of a route regex: anchored (the whole value must match), on the backtracking engine with the linear
 * fallback. Throws (naming the reason) for a pattern `regexSyntaxError` refuses: a table from an older version or
 * a hand-edited state file never brings a backtracking-only regex into a worker.
 */
export function compileRouteRegex(pattern: string): RegExp {
  const why = regexSyntaxError(pattern);
  if (why !== undefined) throw new Error(`regular expression ${JSON.stringify(pattern)}: ${why}`);
  return new RegExp(`^(?:${pattern})$`);
}
