/**
 * Which spec files Test Explorer lists: every `*.scalpel` of a workspace folder except those matched by
 * `scalpel.testing.exclude` or `files.exclude` (VS Code glob patterns relative to the folder; a pattern that matches a
 * folder excludes what is in it). Plain data and no `vscode` import, so it is tested without an editor.
 */

/** `files.exclude`: a pattern → true to exclude; false, or a `{ when }` condition on siblings, does not exclude here. */
export type FilesExclude = Record<string, boolean | { when: string }>;

export type Scope = (relativePath: string) => boolean;

/** A VS Code glob as an anchored RegExp: `**` any run of folders, `*` and `?` within one name, `{a,b}`, `[…]`. */
export function globRegExp(glob: string): RegExp {
  let re = '';
  let braces = 0;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*' && glob[i + 1] === '*') {
      const slash = glob[i + 2] === '/';
      re += slash ? '(?:.*/)?' : '.*';
      i += slash ? 2 : 1;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '{') {
      braces++;
      re += '(?:';
    } else if (c === '}' && braces > 0) {
      braces--;
      re += ')';
    } else if (c === ',' && braces > 0) re += '|';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        re += `[${glob.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else re += c.replace(/[.+^$()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Test Explorer's own default: the repository's fixtures under test/, and installed packages. */
export const DEFAULT_EXCLUDE = ['test/**', '**/node_modules/**'];

/** Whether a spec (its path relative to its workspace folder, with `/`) belongs in Test Explorer. */
export function testScope(exclude: readonly string[], filesExclude: FilesExclude = {}): Scope {
  const patterns = [...exclude, ...Object.entries(filesExclude).filter(([, v]) => v === true).map(([p]) => p)].map(globRegExp);
  return (relativePath) => {
    const parts = relativePath.split('/');
    // The file itself, or any folder above it.
    for (let n = parts.length; n > 0; n--) {
      const p = parts.slice(0, n).join('/');
      if (patterns.some((re) => re.test(p))) return false;
    }
    return true;
  };
}
