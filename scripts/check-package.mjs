// What a new user gets from npm, checked the way they would meet it: build and pack the package,
// install the tarball into a fresh app, then check that the install ran no script and warned about
// none, that the types resolve for an ESM app with Node16 resolution, that LICENSE and no dangling
// source maps are shipped, and that publint and are-the-types-wrong find nothing.
// usage: node scripts/check-package.mjs          (exit 0 when every check passes)
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);
const work = mkdtempSync(join(tmpdir(), 'bzcm-package-'));
const failures = [];
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'}  ${what}`);
  if (!ok) failures.push(what);
};
const run = (cmd, args, cwd) => {
  const r = spawnSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, npm_config_fund: 'false' },
  });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
};

try {
  // npm pack runs prepack (the build).
  const packed = JSON.parse(
    execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: root, encoding: 'utf8' }),
  );
  const tarball = join(work, packed[0].filename);
  const files = packed[0].files.map((f) => f.path);
  check(files.includes('LICENSE'), 'LICENSE is in the tarball');
  check(!files.some((f) => f.endsWith('.map')), 'no source maps pointing at unshipped sources');
  check(
    files.includes('dist/index.d.ts') && files.includes('dist/testing/index.d.ts'),
    'type declarations shipped',
  );

  const app = join(work, 'app');
  execFileSync('mkdir', ['-p', app]);
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'fresh-app', version: '1.0.0', private: true, type: 'module' }, null, 2),
  );
  const install = run('npm', ['install', '--no-audit', tarball, 'typescript@~5.9.3', '@types/node@^20'], app);
  check(install.status === 0, 'npm install of the tarball into a fresh app');
  check(
    !/install script|allowScripts|prepare/i.test(install.out),
    'the install printed no install-script warning',
  );
  const pkgDir = join(app, 'node_modules', 'bluez-connection-manager');
  check(existsSync(join(pkgDir, 'LICENSE')), 'LICENSE installed');
  check(existsSync(join(app, 'node_modules', 'xstate')), 'the xstate peer dependency was installed');

  writeFileSync(
    join(app, 'app.ts'),
    [
      "import { establishConnection, createAdapterPool, openBluez, ConnectionFailedError, VERSION } from 'bluez-connection-manager';",
      "import { startSimulatedBluez } from 'bluez-connection-manager/testing';",
      'const version: string = VERSION;',
      'export const uses = [establishConnection, createAdapterPool, openBluez, ConnectionFailedError, startSimulatedBluez, version];',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module: 'Node16',
        moduleResolution: 'Node16',
        target: 'ES2022',
        strict: true,
        noEmit: true,
        types: ['node'],
      },
      files: ['app.ts'],
    }),
  );
  const tsc = run(join(app, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'], app);
  check(
    tsc.status === 0,
    `types resolve in an ESM app with Node16 resolution${tsc.status === 0 ? '' : `:\n${tsc.out}`}`,
  );
  const load = run(
    process.execPath,
    ['-e', "import('bluez-connection-manager').then((m) => console.log(m.VERSION))"],
    app,
  );
  const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
  check(
    load.status === 0 && load.out.trim() === version,
    `the installed package loads and reports ${version}`,
  );

  const publint = run(bin('publint'), [pkgDir], root);
  check(
    publint.status === 0 && /All good/.test(publint.out),
    `publint${/All good/.test(publint.out) ? '' : `:\n${publint.out}`}`,
  );
  const attw = run(bin('attw'), [tarball, '--profile', 'esm-only', '--format', 'ascii'], root);
  check(attw.status === 0, `are-the-types-wrong (esm-only)${attw.status === 0 ? '' : `:\n${attw.out}`}`);
} finally {
  rmSync(work, { recursive: true, force: true });
  for (const f of readdirSync(root)) if (/^bluez-connection-manager-.*\.tgz$/.test(f)) rmSync(join(root, f));
}

console.log(failures.length === 0 ? 'package checks passed' : `${failures.length} package check(s) failed`);
process.exit(failures.length === 0 ? 0 : 1);
