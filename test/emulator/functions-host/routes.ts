/**
 * HTTP trigger routes as the Functions host matches them (ASP.NET Core route templates under the
 * `api` prefix): literal segments match case-insensitively; `{name}` one segment, `{name?}` an
 * optional trailing segment, `{name=default}` a default, `{name:int}` a constraint (int, long,
 * bool, guid, alpha, decimal/double/float; others are accepted unchecked), `{*rest}`/`{**rest}` the
 * remainder. A route without a template is the function name. Among matching routes the most
 * specific wins (literal before parameter before optional before catch-all).
 */

interface Part {
  literal?: string;
  param?: {
    name: string;
    optional: boolean;
    defaultValue?: string;
    constraints: string[];
    catchAll: boolean;
  };
}

interface Segment {
  parts: Part[];
  /** Lower is more specific. */
  rank: number;
}

export interface CompiledRoute {
  template: string;
  /** Route parameters when `path` (below the prefix, no leading slash) matches, else undefined. */
  match(path: string): Record<string, string> | undefined;
  /** For ordering: compare with `compareRoutes`. */
  readonly ranks: number[];
}

const CONSTRAINTS: Record<string, RegExp> = {
  int: /^-?\d+$/,
  long: /^-?\d+$/,
  bool: /^(true|false)$/i,
  guid: /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i,
  alpha: /^[a-z]+$/i,
  decimal: /^-?\d+(\.\d+)?$/,
  double: /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/,
  float: /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/,
};

export function compileRoute(template: string): CompiledRoute {
  const trimmed = template.replace(/^\/+|\/+$/g, '');
  const segments: Segment[] =
    trimmed === '' ? [] : trimmed.split('/').map((text, i, all) => parseSegment(text, i === all.length - 1));
  return {
    template,
    ranks: segments.map((s) => s.rank),
    match(path: string) {
      const given = path === '' ? [] : path.replace(/\/+$/, '').split('/');
      const params: Record<string, string> = {};
      for (let i = 0; i < segments.length; i++) {
        const segment = segments[i]!;
        const only = segment.parts.length === 1 ? segment.parts[0]!.param : undefined;
        if (only?.catchAll) {
          const rest = given.slice(i).map(safeDecode);
          if (rest.some((r) => r === undefined)) return undefined;
          const value = rest.join('/');
          if (value !== '') params[only.name] = value;
          else if (only.defaultValue !== undefined) params[only.name] = only.defaultValue;
          return params;
        }
        const text = given[i];
        if (text === undefined) {
          if (only && (only.optional || only.defaultValue !== undefined)) {
            if (only.defaultValue !== undefined) params[only.name] = only.defaultValue;
            continue;
          }
          return undefined;
        }
        if (!matchSegment(segment, text, params)) return undefined;
      }
      return given.length <= segments.length ? params : undefined;
    },
  };
}

/** Negative when `a` is more specific than `b` (it should be tried first). */
export function compareRoutes(a: CompiledRoute, b: CompiledRoute): number {
  const n = Math.max(a.ranks.length, b.ranks.length);
  for (let i = 0; i < n; i++) {
    const ra = a.ranks[i] ?? 9;
    const rb = b.ranks[i] ?? 9;
    if (ra !== rb) return ra - rb;
  }
  return 0;
}

function parseSegment(text: string, isLast: boolean): Segment {
  const parts: Part[] = [];
  const re = /\{([^{}]+)\}/g;
  let last = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m.index > last) parts.push({ literal: text.slice(last, m.index) });
    parts.push({ param: parseParam(m[1]!) });
    last = m.index + m[0].length;
  }
  if (last < text.length) parts.push({ literal: text.slice(last) });
  if (parts.length === 0) throw new Error(`Invalid route template segment '${text}'.`);
  for (const part of parts) {
    if (part.param && (part.param.catchAll || part.param.optional) && (parts.length > 1 || !isLast)) {
      throw new Error(`Invalid route template: '{${part.param.name}}' must be a whole, last segment.`);
    }
  }
  const only = parts.length === 1 ? parts[0]! : undefined;
  let rank = 2;
  if (only?.literal !== undefined) rank = 0;
  else if (only?.param?.catchAll) rank = 4;
  else if (only?.param?.optional || only?.param?.defaultValue !== undefined) rank = 3;
  else if (only?.param && only.param.constraints.length > 0) rank = 1;
  return { parts, rank };
}

function parseParam(body: string): NonNullable<Part['param']> {
  let text = body;
  let catchAll = false;
  if (text.startsWith('**')) {
    catchAll = true;
    text = text.slice(2);
  } else if (text.startsWith('*')) {
    catchAll = true;
    text = text.slice(1);
  }
  let defaultValue: string | undefined;
  const eq = text.indexOf('=');
  if (eq >= 0) {
    defaultValue = text.slice(eq + 1);
    text = text.slice(0, eq);
  }
  let optional = false;
  if (text.endsWith('?')) {
    optional = true;
    text = text.slice(0, -1);
  }
  const [name, ...constraints] = text.split(':');
  if (!name || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
    throw new Error(`Invalid route parameter '{${body}}'.`);
  return { name, optional, defaultValue, constraints, catchAll };
}

function matchSegment(segment: Segment, text: string, params: Record<string, string>): boolean {
  let pattern = '^';
  const names: Array<NonNullable<Part['param']>> = [];
  for (const part of segment.parts) {
    if (part.literal !== undefined) pattern += escapeRegExp(part.literal);
    else {
      pattern += '(.+?)';
      names.push(part.param!);
    }
  }
  const m = new RegExp(`${pattern}$`, 'i').exec(text);
  if (!m) return false;
  const found: Record<string, string> = {};
  for (let i = 0; i < names.length; i++) {
    const param = names[i]!;
    const value = safeDecode(m[i + 1]!);
    if (value === undefined) return false;
    for (const constraint of param.constraints) {
      const check = CONSTRAINTS[constraint.replace(/\(.*\)$/, '').toLowerCase()];
      if (check && !check.test(value)) return false;
    }
    found[param.name] = value;
  }
  Object.assign(params, found);
  return true;
}

function safeDecode(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
