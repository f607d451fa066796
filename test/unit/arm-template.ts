/**
 * A small reader for the ARM JSON templates in infra/ (no Bicep compiler or ARM what-if runs here):
 * the template expression language parsed into a tree (so a typo or an unknown function fails a
 * test instead of a deployment), the scopes a template has (the top level and each nested
 * deployment evaluated in `inner` scope), and an evaluator for the subset of functions the app
 * settings use, so a test can compute the settings a deployment would write.
 */

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export type Expr =
  | { kind: 'string'; value: string }
  | { kind: 'number'; value: number }
  | { kind: 'call'; name: string; args: Expr[] }
  | { kind: 'property'; target: Expr; name: string }
  | { kind: 'index'; target: Expr; index: Expr };

/** ARM template functions (learn.microsoft.com/azure/azure-resource-manager/templates/template-functions). */
export const ARM_FUNCTIONS = new Set([
  // array and object
  'array',
  'concat',
  'contains',
  'createArray',
  'createObject',
  'empty',
  'first',
  'flatten',
  'indexOf',
  'intersection',
  'items',
  'join',
  'json',
  'last',
  'lastIndexOf',
  'length',
  'max',
  'min',
  'null',
  'objectKeys',
  'range',
  'shallowMerge',
  'skip',
  'take',
  'tryGet',
  'union',
  // comparison and logic
  'coalesce',
  'equals',
  'greater',
  'greaterOrEquals',
  'less',
  'lessOrEquals',
  'and',
  'bool',
  'false',
  'if',
  'not',
  'or',
  'true',
  // deployment and resource
  'deployment',
  'environment',
  'parameters',
  'variables',
  'extensionResourceId',
  'list',
  'listKeys',
  'listSecrets',
  'pickZones',
  'providers',
  'reference',
  'references',
  'resourceGroup',
  'resourceId',
  'subscription',
  'subscriptionResourceId',
  'managementGroup',
  'managementGroupResourceId',
  'tenant',
  'tenantResourceId',
  // numeric
  'add',
  'copyIndex',
  'div',
  'float',
  'int',
  'mod',
  'mul',
  'sub',
  // string
  'base64',
  'base64ToJson',
  'base64ToString',
  'dataUri',
  'dataUriToString',
  'endsWith',
  'format',
  'guid',
  'lastIndexOf',
  'newGuid',
  'padLeft',
  'replace',
  'split',
  'startsWith',
  'string',
  'substring',
  'toLower',
  'toUpper',
  'trim',
  'uniqueString',
  'uri',
  'uriComponent',
  'uriComponentToString',
  'utcNow',
  'dateTimeAdd',
  'dateTimeFromEpoch',
  'dateTimeToEpoch',
  // lambda
  'filter',
  'groupBy',
  'lambda',
  'lambdaVariables',
  'map',
  'mapValues',
  'reduce',
  'sort',
  'toObject',
]);

// ---------------------------------------------------------------------------------------------
// Parsing

/** A template string holds an expression when it is `[...]` (and `[[` escapes a literal `[`). */
export function isExpression(value: string): boolean {
  return value.startsWith('[') && value.endsWith(']') && !value.startsWith('[[');
}

type Token =
  | { t: 'ident'; v: string }
  | { t: 'string'; v: string }
  | { t: 'number'; v: number }
  | { t: 'punct'; v: string };

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === "'") {
      let v = '';
      i++;
      for (;;) {
        if (i >= text.length) throw new Error(`unterminated string in ${text}`);
        if (text[i] === "'") {
          if (text[i + 1] === "'") {
            v += "'";
            i += 2;
            continue;
          }
          i++;
          break;
        }
        v += text[i];
        i++;
      }
      tokens.push({ t: 'string', v });
    } else if (/[0-9-]/.test(c)) {
      const m = /^-?\d+(\.\d+)?/.exec(text.slice(i));
      if (!m) throw new Error(`bad number at ${i} in ${text}`);
      tokens.push({ t: 'number', v: Number(m[0]) });
      i += m[0].length;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i))!;
      tokens.push({ t: 'ident', v: m[0] });
      i += m[0].length;
    } else if ('(),.[]'.includes(c)) {
      tokens.push({ t: 'punct', v: c });
      i++;
    } else {
      throw new Error(`unexpected '${c}' at ${i} in ${text}`);
    }
  }
  return tokens;
}

/** Parses the inside of `[...]`. Throws on anything that is not a well-formed ARM expression. */
export function parseExpression(text: string): Expr {
  const tokens = tokenize(text);
  let pos = 0;
  const peek = (): Token | undefined => tokens[pos];
  const expectPunct = (v: string): void => {
    const tok = tokens[pos];
    if (!tok || tok.t !== 'punct' || tok.v !== v)
      throw new Error(`expected '${v}' at token ${pos} in ${text}`);
    pos++;
  };
  const primary = (): Expr => {
    const tok = tokens[pos++];
    if (!tok) throw new Error(`unexpected end of ${text}`);
    if (tok.t === 'string') return { kind: 'string', value: tok.v };
    if (tok.t === 'number') return { kind: 'number', value: tok.v };
    if (tok.t === 'ident') {
      expectPunct('(');
      const args: Expr[] = [];
      const next = peek();
      if (!(next && next.t === 'punct' && next.v === ')')) {
        for (;;) {
          args.push(expression());
          const sep = peek();
          if (sep && sep.t === 'punct' && sep.v === ',') {
            pos++;
            continue;
          }
          break;
        }
      }
      expectPunct(')');
      return { kind: 'call', name: tok.v, args };
    }
    throw new Error(`unexpected '${tok.v}' in ${text}`);
  };
  const expression = (): Expr => {
    let e = primary();
    for (;;) {
      const tok = peek();
      if (tok && tok.t === 'punct' && tok.v === '.') {
        pos++;
        const name = tokens[pos++];
        if (!name || name.t !== 'ident') throw new Error(`expected a property name in ${text}`);
        e = { kind: 'property', target: e, name: name.v };
      } else if (tok && tok.t === 'punct' && tok.v === '[') {
        pos++;
        const index = expression();
        expectPunct(']');
        e = { kind: 'index', target: e, index };
      } else {
        return e;
      }
    }
  };
  const result = expression();
  if (pos !== tokens.length) throw new Error(`unexpected trailing tokens in ${text}`);
  return result;
}

/** Every call in an expression tree, depth first. */
export function calls(e: Expr, out: Array<Extract<Expr, { kind: 'call' }>> = []): typeof out {
  if (e.kind === 'call') {
    out.push(e);
    for (const a of e.args) calls(a, out);
  } else if (e.kind === 'property') calls(e.target, out);
  else if (e.kind === 'index') {
    calls(e.target, out);
    calls(e.index, out);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Scopes

/** One evaluation scope: a template, or a nested deployment's template in `inner` scope. */
export interface TemplateScope {
  /** Where it sits, for messages (`main.json`, `main.json > kvguard-app-settings`). */
  label: string;
  template: JsonObject;
  /** Every expression string of this scope, with its JSON path. */
  expressions: Array<{ path: string; text: string; expr: Expr }>;
  /** Resources of this scope (not of its nested templates). */
  resources: JsonObject[];
  /** Copy loop names: resource, property and variable loops. */
  copyNames: Set<string>;
}

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A JSON value as text: strings as they are, anything else as JSON. */
export function text(v: Json | undefined): string {
  return typeof v === 'string' ? v : (JSON.stringify(v) ?? 'undefined');
}

export function asObject(v: Json | undefined, what: string): JsonObject {
  if (!isObject(v)) throw new Error(`${what} is not an object`);
  return v;
}

function isInnerDeployment(resource: JsonObject): boolean {
  const props = resource.properties;
  return (
    resource.type === 'Microsoft.Resources/deployments' &&
    isObject(props) &&
    isObject(props.template) &&
    isObject(props.expressionEvaluationOptions) &&
    props.expressionEvaluationOptions.scope === 'inner'
  );
}

/** The top-level scope and every inner-scoped nested template, recursively. */
export function scopesOf(label: string, template: JsonObject): TemplateScope[] {
  const scope: TemplateScope = {
    label,
    template,
    expressions: [],
    resources: [],
    copyNames: new Set(),
  };
  const nested: TemplateScope[] = [];
  const visit = (value: Json, path: string): void => {
    if (typeof value === 'string') {
      if (isExpression(value)) {
        let expr: Expr;
        try {
          expr = parseExpression(value.slice(1, -1));
        } catch (error) {
          throw new Error(`${label} ${path}: ${(error as Error).message}`, { cause: error });
        }
        scope.expressions.push({ path, text: value, expr });
      }
      return;
    }
    if (Array.isArray(value)) {
      value.forEach((v, i) => visit(v, `${path}[${i}]`));
      return;
    }
    if (!isObject(value)) return;
    for (const [key, v] of Object.entries(value)) {
      visit(key, `${path}{key ${key}}`);
      if (key === 'copy') {
        const loops = Array.isArray(v) ? v : [v];
        for (const loop of loops)
          if (isObject(loop) && typeof loop.name === 'string') scope.copyNames.add(loop.name);
      }
      visit(v, `${path}.${key}`);
    }
  };
  for (const [key, value] of Object.entries(template)) {
    if (key !== 'resources') {
      visit(value, `.${key}`);
      continue;
    }
    const resources = Array.isArray(value) ? value : [];
    resources.forEach((r, i) => {
      const resource = asObject(r, `${label} resources[${i}]`);
      scope.resources.push(resource);
      const at = `.resources[${i}](${text(resource.name)})`;
      if (isInnerDeployment(resource)) {
        const props = resource.properties as JsonObject;
        const { template: inner, ...rest } = props;
        visit({ ...resource, properties: rest }, at);
        nested.push(...scopesOf(`${label} > ${text(resource.name)}`, inner as JsonObject));
      } else {
        visit(resource, at);
      }
    });
  }
  return [scope, ...nested];
}

/** The resource type a `resourceId`-family call names (its first string argument with a `/`). */
export function resourceTypeOf(call: Extract<Expr, { kind: 'call' }>): string | undefined {
  for (const a of call.args) if (a.kind === 'string' && a.value.includes('/')) return a.value;
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Evaluation (the subset the app settings and names use)

export interface EvalContext {
  parameters: Record<string, Json>;
  /** The template's `variables` section (copy loops included). */
  variables: JsonObject;
  copyIndex?: Record<string, number>;
  lambda?: Record<string, Json>;
  /** What `environment()` answers (public cloud by default). */
  environment?: JsonObject;
}

const PUBLIC_CLOUD: JsonObject = {
  name: 'AzureCloud',
  suffixes: { storage: 'core.windows.net' },
  authentication: { loginEndpoint: 'https://login.microsoftonline.com/' },
};

/** .NET composite formatting as ARM's `format` does it: `{0}`, `{{` and `}}`. */
function formatString(pattern: string, args: Json[]): string {
  return pattern.replace(/\{\{|\}\}|\{(\d+)\}/g, (m, n: string | undefined) => {
    if (m === '{{') return '{';
    if (m === '}}') return '}';
    const v = args[Number(n)];
    if (v === undefined) throw new Error(`format: no argument ${n}`);
    return typeof v === 'string' ? v : JSON.stringify(v);
  });
}

function isEmpty(v: Json): boolean {
  if (v === null || v === '') return true;
  if (Array.isArray(v)) return v.length === 0;
  if (isObject(v)) return Object.keys(v).length === 0;
  return false;
}

function variable(name: string, ctx: EvalContext): Json {
  const loops = ctx.variables.copy;
  if (Array.isArray(loops)) {
    for (const loop of loops) {
      if (!isObject(loop) || loop.name !== name) continue;
      const count = evaluateValue(loop.count as Json, ctx);
      if (typeof count !== 'number') throw new Error(`variable copy ${name}: count is not a number`);
      const items: Json[] = [];
      for (let i = 0; i < count; i++) {
        items.push(evaluateValue(loop.input as Json, { ...ctx, copyIndex: { ...ctx.copyIndex, [name]: i } }));
      }
      return items;
    }
  }
  if (!(name in ctx.variables) || name === 'copy') throw new Error(`no variable ${name}`);
  return evaluateValue(ctx.variables[name]!, ctx);
}

export function evaluate(e: Expr, ctx: EvalContext): Json {
  switch (e.kind) {
    case 'string':
      return e.value;
    case 'number':
      return e.value;
    case 'property': {
      const target = evaluate(e.target, ctx);
      if (!isObject(target)) throw new Error(`.${e.name} of a non-object`);
      if (!(e.name in target)) throw new Error(`no property ${e.name}`);
      return target[e.name]!;
    }
    case 'index': {
      const target = evaluate(e.target, ctx);
      const index = evaluate(e.index, ctx);
      if (Array.isArray(target) && typeof index === 'number') {
        if (index < 0 || index >= target.length) throw new Error(`index ${index} out of range`);
        return target[index]!;
      }
      if (isObject(target) && typeof index === 'string') return target[index] ?? null;
      throw new Error('bad index');
    }
    case 'call':
      break;
  }
  const name = e.name;
  if (name === 'if') {
    const cond = evaluate(e.args[0]!, ctx);
    return evaluate(cond === true ? e.args[1]! : e.args[2]!, ctx);
  }
  if (name === 'lambda') throw new Error('a lambda is only evaluated by the function that takes it');
  if (name === 'toObject') {
    const items = evaluate(e.args[0]!, ctx);
    if (!Array.isArray(items)) throw new Error('toObject: not an array');
    const apply = (fn: Expr, item: Json): Json => {
      if (fn.kind !== 'call' || fn.name !== 'lambda') throw new Error('toObject: expected a lambda');
      const param = fn.args[0];
      if (param?.kind !== 'string') throw new Error('lambda: expected a parameter name');
      return evaluate(fn.args[1]!, { ...ctx, lambda: { ...ctx.lambda, [param.value]: item } });
    };
    const out: JsonObject = {};
    for (const item of items) {
      const key = apply(e.args[1]!, item);
      if (typeof key !== 'string') throw new Error('toObject: key is not a string');
      out[key] = e.args[2] ? apply(e.args[2], item) : item;
    }
    return out;
  }
  const args = e.args.map((a) => evaluate(a, ctx));
  const str = (i: number): string => {
    const v = args[i];
    if (typeof v !== 'string') throw new Error(`${name}: argument ${i} is not a string`);
    return v;
  };
  switch (name) {
    case 'parameters': {
      const p = str(0);
      if (!(p in ctx.parameters)) throw new Error(`no parameter value for ${p}`);
      return ctx.parameters[p]!;
    }
    case 'variables':
      return variable(str(0), ctx);
    case 'lambdaVariables': {
      const v = ctx.lambda?.[str(0)];
      if (v === undefined) throw new Error(`no lambda variable ${str(0)}`);
      return v;
    }
    case 'copyIndex': {
      const loop = args[0];
      const offset = typeof args[1] === 'number' ? args[1] : typeof loop === 'number' ? loop : 0;
      const indexes = Object.values(ctx.copyIndex ?? {});
      const i = typeof loop === 'string' ? ctx.copyIndex?.[loop] : indexes[indexes.length - 1];
      if (i === undefined) throw new Error(`copyIndex(${text(loop)}) outside its loop`);
      return i + offset;
    }
    case 'format':
      return formatString(str(0), args.slice(1));
    case 'concat':
      if (args.every(Array.isArray)) return (args as Json[][]).flat();
      return args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join('');
    case 'toUpper':
      return str(0).toUpperCase();
    case 'toLower':
      return str(0).toLowerCase();
    case 'join': {
      const items = args[0];
      if (!Array.isArray(items)) throw new Error('join: not an array');
      return items.map(String).join(str(1));
    }
    case 'string': {
      const v = args[0]!;
      if (typeof v === 'string') return v;
      if (typeof v === 'boolean') return v ? 'True' : 'False';
      return typeof v === 'number' ? String(v) : JSON.stringify(v);
    }
    case 'empty':
      return isEmpty(args[0]!);
    case 'not':
      return args[0] !== true;
    case 'and':
      return args.every((a) => a === true);
    case 'or':
      return args.some((a) => a === true);
    case 'equals':
      return JSON.stringify(args[0]) === JSON.stringify(args[1]);
    case 'true':
      return true;
    case 'false':
      return false;
    case 'length': {
      const v = args[0]!;
      if (typeof v === 'string' || Array.isArray(v)) return v.length;
      if (isObject(v)) return Object.keys(v).length;
      throw new Error('length of a scalar');
    }
    case 'createArray':
      return args;
    case 'createObject': {
      const out: JsonObject = {};
      for (let i = 0; i < args.length; i += 2) out[str(i)] = args[i + 1]!;
      return out;
    }
    case 'union': {
      if (args.every(Array.isArray))
        return [...new Set((args as Json[][]).flat().map((v) => JSON.stringify(v)))].map(
          (v) => JSON.parse(v) as Json,
        );
      const out: JsonObject = {};
      for (const a of args) {
        if (!isObject(a)) throw new Error('union of a non-object');
        Object.assign(out, a);
      }
      return out;
    }
    case 'environment':
      return ctx.environment ?? PUBLIC_CLOUD;
    case 'take': {
      const v = args[0]!;
      const n = args[1] as number;
      if (typeof v === 'string') return v.slice(0, n);
      if (Array.isArray(v)) return v.slice(0, n);
      throw new Error('take of a scalar');
    }
    default:
      throw new Error(`the test evaluator does not implement ${name}()`);
  }
}

/** Evaluates a template value: expression strings, and objects and arrays of them (keys included). */
export function evaluateValue(value: Json, ctx: EvalContext): Json {
  if (typeof value === 'string') {
    if (isExpression(value)) return evaluate(parseExpression(value.slice(1, -1)), ctx);
    return value.startsWith('[[') ? value.slice(1) : value;
  }
  if (Array.isArray(value)) return value.map((v) => evaluateValue(v, ctx));
  if (isObject(value)) {
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(value)) {
      const key = evaluateValue(k, ctx);
      if (typeof key !== 'string') throw new Error(`key ${k} is not a string`);
      out[key] = evaluateValue(v, ctx);
    }
    return out;
  }
  return value;
}
