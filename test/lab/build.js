#!/usr/bin/env node
// Builds the JupyterLab test app into app/ (static/ bundle, schemas/, themes/) with webpack, unless
// app/ already holds a build of the same inputs (package-lock.json, webpack.config.js, src/, this
// file). Needs `npm ci` in this folder first.
// Usage: node test/lab/build.js [--force]
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const HERE = __dirname;
const APP = path.join(HERE, 'app');
const STAMP = path.join(APP, 'build-stamp.json');

function inputsHash() {
  const h = crypto.createHash('sha256');
  const files = ['package.json', 'package-lock.json', 'webpack.config.js', 'build.js', ...fs.readdirSync(path.join(HERE, 'src')).sort().map((f) => path.join('src', f))];
  for (const f of files) {
    h.update(f + '\0');
    h.update(fs.readFileSync(path.join(HERE, f)));
  }
  return h.digest('hex');
}

function upToDate(hash) {
  try {
    const stamp = JSON.parse(fs.readFileSync(STAMP, 'utf8'));
    return stamp.inputs === hash && fs.existsSync(path.join(APP, 'static', 'bundle.js'));
  } catch {
    return false;
  }
}

async function main() {
  if (!fs.existsSync(path.join(HERE, 'node_modules', 'webpack'))) {
    throw new Error(`${HERE}/node_modules is missing: run npm ci --prefix ${path.relative(process.cwd(), HERE) || '.'}`);
  }
  const hash = inputsHash();
  if (!process.argv.includes('--force') && upToDate(hash)) {
    console.log(`JupyterLab test app is up to date (${path.relative(process.cwd(), APP)})`);
    return;
  }
  const t0 = Date.now();
  fs.rmSync(STAMP, { force: true });
  const webpack = require(require.resolve('webpack', { paths: [HERE] }));
  const config = require('./webpack.config.js');
  const stats = await new Promise((resolve, reject) => webpack(config, (err, s) => (err ? reject(err) : resolve(s))));
  if (stats.hasErrors()) {
    console.error(stats.toString({ all: false, errors: true, errorDetails: true, colors: false }));
    throw new Error('webpack failed');
  }
  const warnings = stats.toJson({ all: false, warnings: true }).warnings ?? [];
  if (warnings.length > 0) console.warn(`${warnings.length} webpack warning(s), e.g.: ${warnings[0].message.split('\n')[0]}`);
  fs.writeFileSync(STAMP, JSON.stringify({ inputs: hash, builtAt: new Date().toISOString() }, null, 2) + '\n');
  console.log(`built the JupyterLab test app into ${path.relative(process.cwd(), APP)} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
