/**
 * Cross-process tests run real child `node` processes, which cannot load .ts on
 * Node 20. This transpiles src/ (one file at a time, no type check) into a temp
 * dir with a node_modules symlink, so a child runs the code under test, not a
 * possibly stale dist/ build.
 */
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const projectRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return walk(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** A transpiled copy of src/; `dir` mirrors src/ (e.g. `${dir}/cli/main.js`). */
export interface TranspiledSrc {
  dir: string;
  remove(): void;
}

/** `only` limits the copy to files whose path relative to src/ it accepts (faster than all of src/). */
export function transpileSrc(only: (relativePath: string) => boolean = () => true): TranspiledSrc {
  const root = mkdtempSync(join(tmpdir(), 'bluez-cm-src-'));
  const srcRoot = join(projectRoot, 'src');
  const out = join(root, 'src');
  for (const file of walk(srcRoot)) {
    if (!only(relative(srcRoot, file))) continue;
    const js = ts.transpileModule(readFileSync(file, 'utf8'), {
      compilerOptions: {
        module: ts.ModuleKind.ESNext,
        target: ts.ScriptTarget.ES2022,
        verbatimModuleSyntax: false,
      },
      fileName: file,
    }).outputText;
    const target = join(out, relative(srcRoot, file)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, js);
  }
  writeFileSync(join(root, 'package.json'), JSON.stringify({ type: 'module' }));
  symlinkSync(join(projectRoot, 'node_modules'), join(root, 'node_modules'));
  return { dir: out, remove: () => rmSync(root, { recursive: true, force: true }) };
}
