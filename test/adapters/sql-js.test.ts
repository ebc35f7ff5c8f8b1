import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, createSyncEngine, StorageError } from 'sync-core';
import { describe, expect, it, vi } from 'vitest';
import { createNodeFileSnapshot, createSqlJsStorage } from '../../adapters/sql-js/index.js';
import { describeStorageConformance } from '../conformance/storage-conformance.js';
import { loadSqlJs, sqlJsFileFactory, tempDir } from '../helpers/storage-factories.js';

describeStorageConformance(sqlJsFileFactory);

describe('sql.js adapter', () => {
  it("persists after every committed write in 'commit' mode, before enqueue resolves", async () => {
    const SQL = await loadSqlJs();
    const saves: Uint8Array[] = [];
    const engine = createSyncEngine({
      storage: createSqlJsStorage(new SQL.Database(), { persist: (image) => void saves.push(image) }),
      entities: { a: {} },
    });
    await engine.open();
    await engine.start({ userId: 'u' });
    const before = saves.length;
    await engine.enqueue({ entity: 'a', op: 'create', entityId: '1', data: {} });
    expect(saves.length).toBe(before + 1);
    // The saved image alone holds the mutation.
    const reloaded = new SQL.Database(saves[saves.length - 1]);
    expect(reloaded.exec('SELECT entity_id FROM sync_mutations')[0]?.values).toEqual([['1']]);
    // Reads do not export the database.
    await engine.queue.stats();
    expect(saves.length).toBe(before + 1);
    await engine.close();
  });

  it('debounced mode batches saves and flushes on close', async () => {
    const SQL = await loadSqlJs();
    let saves = 0;
    let last: Uint8Array | undefined;
    const storage = createSqlJsStorage(new SQL.Database(), {
      persist: (image) => {
        saves++;
        last = image;
      },
      persistMode: { debounceMs: 60_000 },
    });
    const engine = createSyncEngine({ storage, entities: { a: {} } });
    await engine.open();
    await engine.start({ userId: 'u' });
    for (let i = 0; i < 20; i++)
      await engine.enqueue({ entity: 'a', op: 'create', entityId: `${i}`, data: {} });
    expect(saves).toBe(0);
    await engine.close();
    expect(saves).toBe(1);
    expect(new SQL.Database(last).exec('SELECT COUNT(*) FROM sync_mutations')[0]?.values).toEqual([[20]]);
  });

  it('debounced mode saves at the latest maxWaitMs after the first unsaved write, even in a loop of awaited writes that never lets a timer fire', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const SQL = await loadSqlJs();
      const saves: number[] = [];
      const storage = createSqlJsStorage(new SQL.Database(), {
        persist: () => void saves.push(Date.now()),
        persistMode: { debounceMs: 50, maxWaitMs: 500 },
      });
      await storage.exec('CREATE TABLE t (v INTEGER)');
      const started = Date.now();
      for (let i = 1; i <= 120; i++) {
        vi.setSystemTime(started + i * 10); // the clock moves; the timers are never advanced
        await storage.run('INSERT INTO t (v) VALUES (?)', [i]);
      }
      // Dirty from 0 ms: saved by the write at 500 ms; dirty again from 510: saved at 1010.
      expect(saves.map((at) => at - started)).toEqual([500, 1010]);
      await storage.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('flush() saves pending writes on demand (e.g. on pagehide)', async () => {
    const SQL = await loadSqlJs();
    let saves = 0;
    const storage = createSqlJsStorage(new SQL.Database(), {
      persist: () => void saves++,
      persistMode: { debounceMs: 60_000 },
    });
    const engine = createSyncEngine({ storage, entities: { a: {} } });
    await engine.open();
    await engine.start({ userId: 'u' });
    await engine.enqueue({ entity: 'a', op: 'create', entityId: '1', data: {} });
    await storage.flush();
    expect(saves).toBe(1);
    await storage.flush();
    expect(saves).toBe(1);
    await engine.close();
  });

  it('the file snapshot replaces the file atomically and loads undefined when absent', async () => {
    const { dir, remove } = tempDir();
    const path = join(dir, 'q.sqlite');
    const snapshot = createNodeFileSnapshot(path);
    expect(await snapshot.load()).toBeUndefined();
    await snapshot.save(new Uint8Array([1, 2, 3]));
    expect([...readFileSync(path)]).toEqual([1, 2, 3]);
    expect(existsSync(`${path}.${process.pid}.tmp`)).toBe(false);
    expect([...((await snapshot.load()) ?? [])]).toEqual([1, 2, 3]);
    remove();
  });

  it('reports a corrupt image as STORAGE_CORRUPT, never a silently empty queue (FAULTS 10)', async () => {
    const SQL = await loadSqlJs();
    const { dir, remove } = tempDir();
    const path = join(dir, 'q.sqlite');
    writeFileSync(path, Buffer.from('garbage, not SQLite '.repeat(300)));
    const image = await createNodeFileSnapshot(path).load();
    const engine = createSyncEngine({
      storage: createSqlJsStorage(new SQL.Database(image)),
      entities: { a: {} },
    });
    const error = await engine.open().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect(error).toMatchObject({ code: 'STORAGE_CORRUPT' });
    remove();
  });

  it('rejects invalid options with a ConfigError', async () => {
    const SQL = await loadSqlJs();
    const db = new SQL.Database();
    expect(() => createSqlJsStorage(db, { persist: 'no' as never })).toThrow(ConfigError);
    expect(() => createSqlJsStorage(db, { persistMode: { debounceMs: -5 } })).toThrow(ConfigError);
    expect(() => createSqlJsStorage({} as never)).toThrow(ConfigError);
    expect(() => createNodeFileSnapshot('')).toThrow(ConfigError);
  });

  it('a failed save does not poison later ones; the unsaved image is written by the next save', async () => {
    const SQL = await loadSqlJs();
    let failNext = false;
    const images: Uint8Array[] = [];
    const storage = createSqlJsStorage(new SQL.Database(), {
      persist: (image) => {
        if (failNext) {
          failNext = false;
          throw new Error('disk unplugged');
        }
        images.push(image);
      },
    });
    const engine = createSyncEngine({ storage, entities: { a: {} } });
    await engine.open();
    await engine.start({ userId: 'u' });
    failNext = true;
    await expect(
      engine.enqueue({ entity: 'a', op: 'create', entityId: '1', data: {} }),
    ).rejects.toMatchObject({
      code: 'STORAGE_NOT_PERSISTED',
    });
    // Committed in memory, so queued: "not persisted" is never "not saved" (a retry by the app
    // would queue a second copy under a new key).
    expect((await engine.queue.stats()).total).toBe(1);
    await engine.enqueue({ entity: 'a', op: 'create', entityId: '2', data: {} });
    const saved = new SQL.Database(images[images.length - 1]);
    expect(saved.exec('SELECT entity_id FROM sync_mutations ORDER BY seq')[0]?.values).toEqual([
      ['1'],
      ['2'],
    ]);
    await engine.close();
  });

  it('a save asked for during a transaction runs right after it commits', async () => {
    const SQL = await loadSqlJs();
    let saves = 0;
    const storage = createSqlJsStorage(new SQL.Database(), {
      persist: () => void saves++,
      persistMode: { debounceMs: 60_000 },
    });
    const engine = createSyncEngine({ storage, entities: { a: {} } });
    await engine.open();
    await engine.start({ userId: 'u' });
    await engine.enqueue({ entity: 'a', op: 'create', entityId: '1', data: {} });
    let flushed: Promise<void> | undefined;
    await engine.transaction(async (tx) => {
      flushed = storage.flush();
      await tx.all('SELECT 1');
      expect(saves).toBe(0);
    });
    await flushed;
    expect(saves).toBe(1);
    await engine.close();
  });

  it('an empty image file is reported as corrupt, never opened as an empty queue', async () => {
    const { dir, remove } = tempDir();
    const path = join(dir, 'empty.sqlite');
    writeFileSync(path, new Uint8Array(0));
    await expect(createNodeFileSnapshot(path).load()).rejects.toMatchObject({ code: 'STORAGE_CORRUPT' });
    remove();
  });
});

describe('sync-core/sql-js API documentation (STYLE.md: TSDoc with an @example on every export)', () => {
  it('every export and every member of an exported interface is documented; each export has an @example that imports from a public path and type-checks', async () => {
    const ts = (await import('typescript')).default;
    const root = fileURLToPath(new URL('../../', import.meta.url));
    const entry = join(root, 'adapters/sql-js/index.ts');
    const config = ts.readConfigFile(join(root, 'tsconfig.json'), ts.sys.readFile);
    const { options } = ts.parseJsonConfigFileContent(config.config, ts.sys, root);
    const program = ts.createProgram([entry], options);
    const checker = program.getTypeChecker();
    const moduleSymbol = checker.getSymbolAtLocation(program.getSourceFile(entry)!)!;

    const problems: string[] = [];
    const examples: { name: string; code: string }[] = [];
    for (const exported of checker.getExportsOfModule(moduleSymbol)) {
      const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
      const name = exported.getName();
      if (ts.displayPartsToString(symbol.getDocumentationComment(checker)).trim() === '') {
        problems.push(`${name}: no TSDoc`);
      }
      const blocks = symbol
        .getJsDocTags(checker)
        .filter((tag) => tag.name === 'example')
        .map((tag) => ts.displayPartsToString(tag.text))
        .flatMap((text) => [...text.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!));
      if (blocks.length === 0) problems.push(`${name}: no @example with a ts block`);
      for (const code of blocks) {
        if (!/from 'sync-core(\/sql-js)?'/.test(code))
          problems.push(`${name}: @example imports no public path`);
        examples.push({ name, code });
      }
      if (symbol.flags & ts.SymbolFlags.Interface) {
        for (const member of checker.getPropertiesOfType(checker.getDeclaredTypeOfSymbol(symbol))) {
          // Members inherited from the core's StorageAdapter are documented there.
          const declaredHere = member.declarations?.some((d) =>
            d.getSourceFile().fileName.includes('adapters/sql-js'),
          );
          if (
            declaredHere &&
            ts.displayPartsToString(member.getDocumentationComment(checker)).trim() === ''
          ) {
            problems.push(`${name}.${member.getName()}: no TSDoc`);
          }
        }
      }
    }
    expect(problems).toEqual([]);

    // Each example is its own module next to the adapter, compiled with the project's options.
    const files = new Map(examples.map((e, i) => [join(root, `adapters/sql-js/__example-${i}.ts`), e]));
    const host = ts.createCompilerHost(options);
    const { getSourceFile, fileExists, readFile } = host;
    host.fileExists = (file) => files.has(file) || fileExists.call(host, file);
    host.readFile = (file) => files.get(file)?.code ?? readFile.call(host, file);
    host.getSourceFile = (file, language, ...rest) => {
      const example = files.get(file);
      return example === undefined
        ? getSourceFile.call(host, file, language, ...rest)
        : ts.createSourceFile(file, example.code, language);
    };
    const examplesProgram = ts.createProgram([...files.keys()], options, host);
    const errors = [...files.keys()].flatMap((file) =>
      ts.getPreEmitDiagnostics(examplesProgram, examplesProgram.getSourceFile(file)).map((d) => {
        const where =
          d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line + 1 : 0;
        return `@example of ${files.get(file)!.name}, line ${where}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
      }),
    );
    expect(errors).toEqual([]);
  }, 60_000);
});
