import { ApiError } from '@scaibunker/core';
import type { AbortableOperationOptions, DatabaseConnection, Dialect, Driver, QueryResult, TransactionSettings } from 'kysely';
import type { DependencyState } from '../health/DependencyState.js';
import { isDatabaseOutage, isOutOfSpace } from '../health/failures.js';

/**
 * A dialect whose every database call reports to `state` and turns an outage into
 * `STORE_UNAVAILABLE` (a lost or refused connection: a restart, a failover) and a full disk into
 * `INSUFFICIENT_STORAGE`. SQL errors (constraint violations and the like) pass unchanged. One
 * place for the whole store: repositories and services never see a driver's own errors.
 */
export function guardDialect(inner: Dialect, state: DependencyState): Dialect {
  return {
    createAdapter: () => inner.createAdapter(),
    createQueryCompiler: () => inner.createQueryCompiler(),
    createIntrospector: (db) => inner.createIntrospector(db),
    createDriver: () => new GuardedDriver(inner.createDriver(), state),
  };
}

class GuardedDriver implements Driver {
  private readonly wrapped = new WeakMap<DatabaseConnection, DatabaseConnection>();
  private readonly unwrapped = new WeakMap<DatabaseConnection, DatabaseConnection>();

  constructor(
    private readonly inner: Driver,
    private readonly state: DependencyState,
  ) {}

  init(options?: AbortableOperationOptions): Promise<void> {
    return guard(this.state, () => this.inner.init(options));
  }

  async acquireConnection(options?: AbortableOperationOptions): Promise<DatabaseConnection> {
    const conn = await guard(this.state, () => this.inner.acquireConnection(options));
    let outer = this.wrapped.get(conn);
    if (!outer) {
      outer = new GuardedConnection(conn, this.state);
      this.wrapped.set(conn, outer);
      this.unwrapped.set(outer, conn);
    }
    return outer;
  }

  private raw(conn: DatabaseConnection): DatabaseConnection {
    return this.unwrapped.get(conn) ?? conn;
  }

  beginTransaction(conn: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return guard(this.state, () => this.inner.beginTransaction(this.raw(conn), settings));
  }

  commitTransaction(conn: DatabaseConnection): Promise<void> {
    return guard(this.state, () => this.inner.commitTransaction(this.raw(conn)));
  }

  rollbackTransaction(conn: DatabaseConnection): Promise<void> {
    return guard(this.state, () => this.inner.rollbackTransaction(this.raw(conn)));
  }

  releaseConnection(conn: DatabaseConnection, options?: AbortableOperationOptions): Promise<void> {
    return this.inner.releaseConnection(this.raw(conn), options);
  }

  destroy(options?: AbortableOperationOptions): Promise<void> {
    return this.inner.destroy(options);
  }
}

class GuardedConnection implements DatabaseConnection {
  constructor(
    private readonly inner: DatabaseConnection,
    private readonly state: DependencyState,
  ) {}

  executeQuery<R>(...args: Parameters<DatabaseConnection['executeQuery']>): Promise<QueryResult<R>> {
    return guard(this.state, () => this.inner.executeQuery<R>(...args));
  }

  streamQuery<R>(...args: Parameters<DatabaseConnection['streamQuery']>): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(...args);
  }
}

async function guard<T>(state: DependencyState, fn: () => Promise<T>): Promise<T> {
  let result: T;
  try {
    result = await fn();
  } catch (err) {
    throw translate(state, err);
  }
  state.up();
  return result;
}

function translate(state: DependencyState, err: unknown): unknown {
  if (err instanceof ApiError) return err;
  if (isOutOfSpace(err)) {
    return new ApiError('INSUFFICIENT_STORAGE', 'the database has no space left; nothing was written', { dependency: 'database' });
  }
  if (isDatabaseOutage(err)) {
    state.down(err);
    return new ApiError('STORE_UNAVAILABLE', 'the database cannot be reached right now; retry shortly', { dependency: 'database' });
  }
  return err;
}
