/** `scheme://user:password@` in any text: the credentials of a URL. */
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@"'<>]*:[^\s/@"'<>]*@/gi;
/** Query parameters whose names say they carry a secret. */
const SECRET_PARAMS =
  /([?&](?:[\w-]*(?:key|token|secret|password|passwd|signature)[\w-]*)=)[^&\s"']*/gi;

/**
 * Removes secrets from one log line, whatever wrote it (a message, an error, a stack): URL
 * credentials, secret-looking query parameters, and the exact `secrets` the process was given
 * (callback key, passwords of its broker and database URLs, API keys).
 */
export function logScrubber(secrets: readonly string[]): (line: string) => string {
  // Shortest last, so a secret containing another is replaced whole. Very short values would
  // blank ordinary words, and they are not secrets worth the name.
  const exact = [...new Set(secrets.filter((s) => s.length >= 6))].sort(
    (a, b) => b.length - a.length,
  );
  return (line) => {
    let out = line.replace(URL_CREDENTIALS, '$1***@').replace(SECRET_PARAMS, '$1***');
    for (const secret of exact) if (out.includes(secret)) out = out.split(secret).join('***');
    return out;
  };
}

/** The secret parts of a URL (password, and user when a password goes with it). */
export function urlSecrets(value: string | undefined): string[] {
  if (!value) return [];
  try {
    const url = new URL(value);
    const found = [decodeURIComponent(url.password), url.password];
    if (url.password) found.push(`${url.username}:${url.password}`);
    return found.filter((s) => s !== '');
  } catch {
    return [];
  }
}
