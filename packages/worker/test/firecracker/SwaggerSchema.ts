/**
 * Checks an HTTP request against a Swagger 2.0 document — the subset Firecracker's API document
 * uses: paths with {params}, one body parameter per operation, and JSON schemas made of $ref,
 * type (object, string, integer, number, boolean, array), properties, required, enum, items,
 * minimum, maximum, readOnly and additionalProperties. As Firecracker (serde's
 * deny_unknown_fields), an object accepts no property its definition does not name unless the
 * definition says `additionalProperties`.
 */
export interface SwaggerDoc {
  paths: Record<string, Record<string, Operation>>;
  definitions: Record<string, Schema>;
}

interface Operation {
  operationId: string;
  parameters?: Array<{ name: string; in: 'body' | 'path'; required?: boolean; type?: string; schema?: Schema }>;
}

export interface Schema {
  $ref?: string;
  type?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  enum?: unknown[];
  items?: Schema;
  minimum?: number;
  maximum?: number;
  readOnly?: boolean;
  additionalProperties?: boolean | Schema;
}

export interface MatchedOperation {
  template: string;
  operationId: string;
  params: Record<string, string>;
}

export class SwaggerSchema {
  constructor(readonly doc: SwaggerDoc) {}

  /** The operation `method path` names, or undefined. */
  match(method: string, path: string): MatchedOperation | undefined {
    for (const [template, ops] of Object.entries(this.doc.paths)) {
      const op = ops[method.toLowerCase()];
      if (!op) continue;
      const names: string[] = [];
      const re = new RegExp(`^${template.replace(/\{(\w+)\}/g, (_m, n: string) => (names.push(n), '([^/]+)'))}$`);
      const m = re.exec(path);
      if (!m) continue;
      return {
        template,
        operationId: op.operationId,
        params: Object.fromEntries(names.map((n, i) => [n, decodeURIComponent(m[i + 1] ?? '')])),
      };
    }
    return undefined;
  }

  /** Every way `body` (undefined: none was sent) violates the operation's body parameter. */
  checkBody(method: string, template: string, body: unknown): string[] {
    const op = this.doc.paths[template]?.[method.toLowerCase()] as Operation;
    const param = op.parameters?.find((p) => p.in === 'body');
    if (!param) return body === undefined ? [] : ['this operation takes no body'];
    if (body === undefined) return param.required ? ['a body is required'] : [];
    return this.check(param.schema as Schema, body, 'body');
  }

  check(schema: Schema, value: unknown, at: string): string[] {
    const s = this.resolve(schema);
    const errors: string[] = [];
    if (s.readOnly) return [`${at} is read-only`];
    switch (s.type) {
      case 'object': {
        if (typeof value !== 'object' || value === null || Array.isArray(value)) return [`${at} must be an object`];
        const obj = value as Record<string, unknown>;
        for (const r of s.required ?? []) if (!(r in obj)) errors.push(`${at}.${r} is required`);
        for (const [k, v] of Object.entries(obj)) {
          const prop = s.properties?.[k];
          if (prop) errors.push(...this.check(prop, v, `${at}.${k}`));
          else if (typeof s.additionalProperties === 'object') errors.push(...this.check(s.additionalProperties, v, `${at}.${k}`));
          else if (s.additionalProperties !== true) errors.push(`${at}.${k} is not a known field`);
        }
        return errors;
      }
      case 'array':
        if (!Array.isArray(value)) return [`${at} must be an array`];
        return value.flatMap((v, i) => (s.items ? this.check(s.items, v, `${at}[${i}]`) : []));
      case 'string':
        if (typeof value !== 'string') return [`${at} must be a string`];
        break;
      case 'integer':
        if (!Number.isInteger(value)) return [`${at} must be an integer`];
        break;
      case 'number':
        if (typeof value !== 'number' || !Number.isFinite(value)) return [`${at} must be a number`];
        break;
      case 'boolean':
        if (typeof value !== 'boolean') return [`${at} must be a boolean`];
        break;
      case undefined:
        break; // free-form (e.g. MMDS contents)
      default:
        return [`${at}: the schema uses type ${s.type}, which this checker does not know`];
    }
    if (s.enum && !s.enum.includes(value)) errors.push(`${at} must be one of ${s.enum.map((e) => JSON.stringify(e)).join(', ')}`);
    if (typeof value === 'number' && s.minimum !== undefined && value < s.minimum) errors.push(`${at} must be >= ${s.minimum}`);
    if (typeof value === 'number' && s.maximum !== undefined && value > s.maximum) errors.push(`${at} must be <= ${s.maximum}`);
    return errors;
  }

  private resolve(s: Schema): Schema {
    if (!s.$ref) return s;
    const name = /^#\/definitions\/(.+)$/.exec(s.$ref)?.[1];
    const def = name ? this.doc.definitions[name] : undefined;
    if (!def) throw new Error(`unresolvable $ref ${s.$ref}`);
    return this.resolve(def);
  }
}
