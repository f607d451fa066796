/**
 * A port whose adapter — and the SDK behind it — is loaded on the first call of one of its methods,
 * not when the app starts. The posture's ARM packages are most of the bundle and serve an hourly
 * timer: loaded at start-up they would slow every cold start of the responder (scripts/build.mjs
 * puts such adapters in files of their own beside dist/index.js).
 */
export function lazyPort<T extends object>(load: () => Promise<T>): T {
  let loaded: Promise<T> | undefined;
  const port = () =>
    (loaded ??= load().catch((error: unknown) => {
      loaded = undefined; // a failed load is tried again by the next call
      throw error;
    }));
  return new Proxy({} as T, {
    get(_target, name) {
      // Not a thenable, and no symbol or inspection key is taken for a method.
      if (typeof name !== 'string' || name === 'then' || name === 'toJSON') return undefined;
      return async (...args: unknown[]) => {
        const adapter = await port();
        const method = (adapter as Record<string, unknown>)[name];
        if (typeof method !== 'function') throw new TypeError(`${name} is not a method of the port`);
        return (method as (...a: unknown[]) => unknown).apply(adapter, args);
      };
    },
  });
}
