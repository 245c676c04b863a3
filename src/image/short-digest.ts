/**
 * Digests as people type them: `sha256:` plus 64 hex characters in full, or, like git's object
 * names, any unique prefix of at least four hex characters, with or without `sha256:`.
 */
import { InputError, NotFoundError } from "../errors.js";

export const MIN_PREFIX = 4;
const FULL = /^sha256:[0-9a-f]{64}$/;

/** The short form kiln prints: `sha256:` and the first 12 hex characters. */
export function shortDigest(digest: string): string {
  return digest.slice(0, "sha256:".length + 12);
}

export function isFullDigest(text: string): boolean {
  return FULL.test(text);
}

/** Could `text` be meant as a digest (prefix) rather than an image name? */
export function looksLikeDigest(text: string): boolean {
  return text.startsWith("sha256:") || new RegExp(`^[0-9a-f]{${MIN_PREFIX},64}$`).test(text);
}

/** The hex part of a digest or digest prefix, validated: it becomes a path under the store. */
function hexOf(text: string): string {
  const hex = text.startsWith("sha256:") ? text.slice("sha256:".length) : text;
  if (!/^[0-9a-f]*$/.test(hex) || hex.length > 64)
    throw new InputError(`'${text}' is not a digest`, {
      hint: "a digest is sha256: and 64 lowercase hex characters; kiln images shows them (or type the first few, e.g. sha256:3f2a91)",
    });
  if (hex.length < MIN_PREFIX)
    throw new InputError(`digest prefix '${text}' is too short`, {
      hint: `type at least ${MIN_PREFIX} hex characters after sha256: (kiln images shows the digests)`,
    });
  return hex;
}

/**
 * The one stored digest `text` names. `stored` holds full digests; `describe` labels a
 * candidate in the error about an ambiguous prefix (its refs).
 */
export function matchDigest(text: string, stored: readonly string[], describe: (digest: string) => string): string {
  const hex = hexOf(text);
  const matches = stored.filter((d) => d.startsWith(`sha256:${hex}`));
  if (matches.length === 1) return matches[0]!;
  if (matches.length === 0) {
    if (hex.length === 64) return `sha256:${hex}`; // a full digest: the caller says it is missing, with the full story
    const asName = text.startsWith("sha256:") ? "" : `no image named ${text}, and `;
    throw new NotFoundError(`${asName}no image in the local store has a digest starting with sha256:${hex}`, {
      hint: "kiln images --all lists every stored image with its digest; kiln bake creates one",
    });
  }
  throw new InputError(
    `digest prefix ${text} is ambiguous: ${matches.length} images match\n${matches.map((d) => `  ${shortDigest(d)} ${describe(d)}`).join("\n")}`,
    { hint: "type more characters of the digest" },
  );
}
