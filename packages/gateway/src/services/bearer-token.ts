/** The token of an `authorization: Bearer <token>` header value, if there is one. */
export function bearerToken(authorization: string | null | undefined): string | undefined {
  if (!authorization) return undefined;
  return /^Bearer\s+(\S+)$/i.exec(authorization.trim())?.[1];
}
