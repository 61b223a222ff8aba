/**
 * The public surface of each package entry point, read with the TypeScript compiler: every export
 * with its kind (value, type, or both). Compared against docs/public-surface.txt so that a change
 * to what users can import is a visible decision in review.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Entry points as package.json exports them, mapped to their sources. */
export const ENTRY_POINTS: Readonly<Record<string, string>> = {
  'bluez-connection-manager': 'src/index.ts',
  'bluez-connection-manager/machines': 'src/machines/index.ts',
  'bluez-connection-manager/testing': 'src/testing/index.ts',
};

/** One line per export: `<entry> <kind> <name>`, sorted. */
export function publicSurface(entries: Readonly<Record<string, string>> = ENTRY_POINTS): string[] {
  const files = Object.values(entries).map((f) => join(root, f));
  const program = ts.createProgram(files, {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    skipLibCheck: true,
    noEmit: true,
  });
  const checker = program.getTypeChecker();
  const lines: string[] = [];
  for (const [entry, file] of Object.entries(entries)) {
    const source = program.getSourceFile(join(root, file));
    if (source === undefined) throw new Error(`${file} is missing`);
    const moduleSymbol = checker.getSymbolAtLocation(source);
    if (moduleSymbol === undefined) throw new Error(`${file} has no exports`);
    for (const exported of checker.getExportsOfModule(moduleSymbol)) {
      const target = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
      const isValue = (target.flags & ts.SymbolFlags.Value) !== 0;
      const isType =
        (target.flags & (ts.SymbolFlags.Type | ts.SymbolFlags.Interface | ts.SymbolFlags.TypeAlias)) !== 0;
      const kind = isValue && isType ? 'class' : isValue ? 'value' : 'type';
      lines.push(`${entry} ${kind} ${exported.getName()}`);
    }
  }
  return lines.sort();
}
