/**
 * The URL with its password (and user) replaced, for logs and error messages. Anything that is
 * not a URL comes back as `<url>`, so a malformed value with a secret in it is never echoed.
 */
export function redactUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.username || url.password) {
      url.username = '***';
      url.password = '';
    }
    return url.toString();
  } catch {
    return '<url>';
  }
}
