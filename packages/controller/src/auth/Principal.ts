/** Who is calling: resolved once per request by the Authenticator. */
export interface Principal {
  kind: 'api_key' | 'jwt' | 'worker';
  tenantId: string;
  /** Stable actor id recorded in exec logs and audit events (`key:<id>`, `jwt:<sub>`, `worker`). */
  actor: string;
  permissions: readonly string[];
}
