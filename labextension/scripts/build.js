#!/usr/bin/env node
// Builds the prebuilt (federated) extension into dist/labextension/ (package.json + static/):
//   1. tsc: src/ -> lib/
//   2. .core/package.json: the JupyterLab core's shared packages (resolutions) and singletons, from
//      @jupyterlab/core-meta (JupyterLab's own staging/package.json of a release), with the ranges of
//      the packages this extension depends on widened to this extension's own ranges, so that any
//      JupyterLab 4 serves them;
//   3. build-labextension (npm @jupyterlab/builder; no Python) with --core-path .core.
// Usage: node scripts/build.js [--development]
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const run = (args) => execFileSync(process.execPath, args, { cwd: root, stdio: 'inherit' });

const t0 = Date.now();
run([require.resolve('typescript/bin/tsc', { paths: [root] }), '-p', 'tsconfig.json']);

const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const metaDir = path.dirname(require.resolve('@jupyterlab/core-meta/package.json', { paths: [root] }));
const core = JSON.parse(fs.readFileSync(path.join(metaDir, 'core.package.json'), 'utf8'));
const resolutions = { ...core.resolutions };
for (const [name, range] of Object.entries(pkg.dependencies || {})) {
  if (name in resolutions) resolutions[name] = range;
}
const corePkg = {
  name: '@tslaunch/labextension-core-meta',
  version: core.version,
  private: true,
  dependencies: {},
  resolutions,
  jupyterlab: { singletonPackages: core.jupyterlab.singletonPackages },
};
const coreDir = path.join(root, '.core');
fs.mkdirSync(coreDir, { recursive: true });
fs.writeFileSync(path.join(coreDir, 'package.json'), JSON.stringify(corePkg, null, 2) + '\n');

const builder = require.resolve('@jupyterlab/builder/lib/build-labextension.js', { paths: [root] });
run([builder, '--core-path', coreDir, ...process.argv.slice(2), root]);

const out = path.join(root, pkg.jupyterlab.outputDir);
const built = JSON.parse(fs.readFileSync(path.join(out, 'package.json'), 'utf8'));
if (!built.jupyterlab || !built.jupyterlab._build) throw new Error(`${out}/package.json has no jupyterlab._build: the build failed`);
console.log(`built ${pkg.name} into ${path.relative(process.cwd(), out) || '.'} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
